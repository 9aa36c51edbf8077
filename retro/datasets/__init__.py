"""Built-in datasets, named in a data spec as ``builtin:NAME:SPLIT`` (see ``retro.data.load_pairs``).

Each loader takes a split name and returns ``(questions, answers)``, raising ``DataError`` for an unknown
split or a missing optional dependency. Loaders import their data lazily, so listing the names costs nothing.
A dataset may also name the codecs that suit it (``BUILTIN_CODECS``): ``(answer codec, question codec)``.
"""

from __future__ import annotations

from collections.abc import Callable

from retro.datasets import cmudict_g2p
from retro.errors import DataError
from retro.text import Codec

__all__ = ["BUILTIN_DATASETS", "BUILTIN_CODECS", "load_builtin", "codecs_for"]

BUILTIN_DATASETS: dict[str, Callable[[str], tuple[list[str], list[str]]]] = {
    "cmudict-g2p": cmudict_g2p.load,
}
BUILTIN_CODECS: dict[str, Callable[[], tuple[Codec, Codec]]] = {
    "cmudict-g2p": cmudict_g2p.codecs,
}


def codecs_for(spec: str) -> tuple[Codec, Codec] | None:
    """(answer codec, question codec) that the data ``spec`` names, or None (files and humans name none)."""
    parts = spec.split(":")
    if len(parts) == 3 and parts[0] == "builtin" and parts[1] in BUILTIN_CODECS:
        return BUILTIN_CODECS[parts[1]]()
    return None


def load_builtin(name: str, split: str) -> tuple[list[str], list[str]]:
    """(questions, answers) of the built-in dataset ``name``, split ``split``."""
    if name not in BUILTIN_DATASETS:
        raise DataError(
            f"unknown built-in dataset {name!r}; built-in datasets: {', '.join(sorted(BUILTIN_DATASETS))}"
        )
    return BUILTIN_DATASETS[name](split)
