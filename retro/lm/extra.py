"""The optional ``[lm]`` extra: importing it, or one line saying how to install it."""

from __future__ import annotations

import importlib
from types import ModuleType

from retro.errors import RetroError

__all__ = ["require", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'retro-imitators[lm]'"


def require(module: str = "transformers") -> ModuleType:
    """Import ``module`` (``transformers``, ``tokenizers`` or ``peft``), or raise a one-line error naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RetroError(
            f"language models need the [lm] extra ({module} is not installed): {INSTALL_HINT}"
        ) from None
