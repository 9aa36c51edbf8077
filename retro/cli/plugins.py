"""Your own imitators on the command line: ``--import MODULE`` and ``--plugins``, the only ways code gets named.

A checkpoint names an imitator, never a module: loading one whose imitator is not registered is an error saying
how to register it. The user's flags do the naming: ``--import my_imitators`` (a module on the path or in the
current folder) or ``--import path/to/file.py`` runs that module before anything is loaded, so its
``retro.models.register_imitator`` calls take effect; ``--plugins`` registers the imitators that installed
packages offer in the entry-point group ``retro.imitators``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from retro.errors import RetroError

__all__ = ["add_plugin_options", "load_user_imitators", "import_user_module", "COMMANDS_WITH_PLUGINS"]

COMMANDS_WITH_PLUGINS = (
    "train",
    "ensemble",
    "score",
    "evaluate",
    "sample",
    "compare",
    "bdmc",
    "report",
    "imitators",
)


def add_plugin_options(parser) -> None:
    parser.add_argument(
        "--import",
        dest="import_modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module (a name, or a .py file) first, so the imitators it registers with "
        "retro.models.register_imitator can be trained and loaded; repeatable (default: none)",
    )
    parser.add_argument(
        "--plugins",
        action="store_true",
        help="register the imitators installed packages offer (entry-point group retro.imitators)",
    )


def import_user_module(spec: str) -> None:
    """Import ``spec``: a ``.py`` file, or a module name (looked up on ``sys.path`` and in the current folder)."""
    try:
        if spec.endswith(".py"):
            path = Path(spec)
            if not path.is_file():
                raise RetroError(f"--import {spec}: no such file")
            found = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(found)
            sys.modules[path.stem] = module
            found.loader.exec_module(module)
        else:
            path = list(sys.path)
            sys.path.insert(0, os.getcwd())  # as `python -m` would find it
            try:
                importlib.import_module(spec)
            finally:
                sys.path[:] = path
    except RetroError:
        raise
    except Exception as e:  # the user's code failed: say where, in one line
        message = str(e).splitlines()[0] if str(e) else ""
        raise RetroError(f"--import {spec} failed: {type(e).__name__}: {message}") from None


def load_user_imitators(args) -> None:
    """Run what ``--import`` and ``--plugins`` ask for (nothing when they are absent)."""
    for spec in getattr(args, "import_modules", None) or []:
        import_user_module(spec)
    if getattr(args, "plugins", False):
        from retro.models import load_imitator_plugins

        load_imitator_plugins()
