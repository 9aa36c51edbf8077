"""Built-in datasets, named in a data spec as ``builtin:NAME:SPLIT`` (see ``retro.data.load_pairs``).

Each loader takes a split name and returns ``(questions, answers)``, raising ``DataError`` for an unknown
split or a missing optional dependency. Loaders import their data lazily, so listing the names costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from retro.data import DataError
from retro.datasets import cmudict_g2p

__all__ = ["BUILTIN_DATASETS", "load_builtin"]

BUILTIN_DATASETS: dict[str, Callable[[str], tuple[list[str], list[str]]]] = {
    "cmudict-g2p": cmudict_g2p.load,
}


def load_builtin(name: str, split: str) -> tuple[list[str], list[str]]:
    """(questions, answers) of the built-in dataset ``name``, split ``split``."""
    if name not in BUILTIN_DATASETS:
        raise DataError(
            f"unknown built-in dataset {name!r}; built-in datasets: {', '.join(sorted(BUILTIN_DATASETS))}"
        )
    return BUILTIN_DATASETS[name](split)
