"""The layering of DESIGN.md, read from the source with ``ast`` (nothing is imported).

Lowest first: core (``retro/`` except ``retro/cli`` and ``retro/experiments``) <- ``retro.models`` (folder
``models/``) <- ``retro.inference`` (folder ``inference/``) <- applications (``retro.cli``, ``retro.experiments``).
A module imports only its own layer or below, at module level or lazily inside a function alike. Every module that
exists when the test runs is checked, so modules added later are covered without an edit here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Source folder -> the package it installs as (``pyproject.toml``'s ``package-dir``).
FOLDERS = {"retro": "retro", "models": "retro.models", "inference": "retro.inference"}

LAYERS = ("core", "models", "inference", "application")

PREFIXES = {
    "models": ("retro.models",),
    "inference": ("retro.inference",),
    "application": ("retro.cli", "retro.experiments"),
}


def layer_of(module: str) -> str | None:
    """The layer of a ``retro`` module name, or ``None`` for a module outside the project."""
    for layer, prefixes in PREFIXES.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return layer
    if module == "retro" or module.startswith("retro."):
        return "core"
    return None


def module_name(path: Path) -> str:
    """The dotted name ``path`` (a file under one of :data:`FOLDERS`) is imported as."""
    rel = path.relative_to(ROOT)
    parts = [FOLDERS[rel.parts[0]], *rel.parts[1:-1]]
    if rel.stem != "__init__":
        parts.append(rel.stem)
    return ".".join(parts)


def imported_modules(tree: ast.AST, name: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``tree``, anywhere in it, with relative imports resolved.

    ``from retro import models`` counts as importing ``retro.models``; ``importlib.import_module("x")`` with a
    literal name counts as importing ``x``.
    """
    package = name if is_package else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called == "import_module" and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def sources() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def violations() -> list[str]:
    """One line per import that reaches a higher layer: ``file:line: module (layer) imports target (layer)``."""
    bad: dict[tuple[str, int], str] = {}
    for path in sources():
        name = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        own = LAYERS.index(layer_of(name))
        for line, target in imported_modules(tree, name, path.name == "__init__.py"):
            layer = layer_of(target)
            if layer is not None and LAYERS.index(layer) > own:
                rel = path.relative_to(ROOT)
                bad.setdefault(
                    (str(rel), line), f"{rel}:{line}: {name} ({layer_of(name)}) imports {target} ({layer})"
                )
    return sorted(bad.values())


def test_every_folder_has_modules():
    for folder in FOLDERS:
        assert list((ROOT / folder).rglob("*.py")), f"no modules under {folder}/"


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("retro.verifiers", "core"),
        ("retro", "core"),
        ("retro.models.latent", "models"),
        ("retro.inference", "inference"),
        ("retro.cli.score", "application"),
        ("retro.experiments.sudoku", "application"),
        ("retro.modelsx", "core"),
        ("torch", None),
    ],
)
def test_layer_of(module, layer):
    assert layer_of(module) == layer


def test_imports_are_found_wherever_they_are():
    source = (
        "import retro.models.base\n"
        "from retro import inference\n"
        "from . import cli\n"
        "from ..experiments import sudoku\n"
        "def f():\n"
        "    from retro.inference.train import train\n"
        "    return importlib.import_module('retro.cli.main')\n"
    )
    found = {m for _, m in imported_modules(ast.parse(source), "retro.sub.mod", False)}
    assert {
        "retro.models.base",
        "retro.inference",
        "retro.sub.cli",
        "retro.experiments.sudoku",
        "retro.inference.train",
        "retro.cli.main",
    } <= found


def test_no_module_imports_a_higher_layer():
    bad = violations()
    assert not bad, "imports against the layering of DESIGN.md:\n" + "\n".join(bad)
