"""Built-in datasets, named in a data spec as ``builtin:NAME:SPLIT`` (see ``retro.data.load_pairs``).

Each loader takes a split name and returns ``(questions, answers)``, raising ``DataError`` for an unknown
split or a missing optional dependency. Loaders import their data lazily, so listing the names costs nothing.
A dataset may also name the codecs that suit it (``BUILTIN_CODECS``): ``(answer codec, question codec)``, and
the training settings that suit each imitator on it (``BUILTIN_SETTINGS``, used by ``retro train`` unless a flag
says otherwise).
"""

from __future__ import annotations

from collections.abc import Callable

from retro.datasets import cmudict_g2p, misspellings
from retro.errors import DataError
from retro.text import Codec

__all__ = [
    "BUILTIN_DATASETS",
    "BUILTIN_CODECS",
    "BUILTIN_SETTINGS",
    "load_builtin",
    "codecs_for",
    "recommended_settings",
]

BUILTIN_DATASETS: dict[str, Callable[[str], tuple[list[str], list[str]]]] = {
    "cmudict-g2p": cmudict_g2p.load,
    "misspellings": misspellings.load,
}
BUILTIN_CODECS: dict[str, Callable[[], tuple[Codec, Codec]]] = {
    "cmudict-g2p": cmudict_g2p.codecs,
}

BUILTIN_SETTINGS: dict[str, dict[str, dict[str, object]]] = {
    "cmudict-g2p": cmudict_g2p.RECOMMENDED_SETTINGS,
}


def _builtin_name(spec: str) -> str | None:
    parts = spec.split(":")
    return parts[1] if len(parts) == 3 and parts[0] == "builtin" else None


def recommended_settings(spec: str, imitator: str) -> dict[str, object]:
    """The training settings the data ``spec`` recommends for the imitator named ``imitator`` (empty for files,
    humans, and imitators it has no recommendation for)."""
    return dict(BUILTIN_SETTINGS.get(_builtin_name(spec) or "", {}).get(imitator, {}))


def codecs_for(spec: str) -> tuple[Codec, Codec] | None:
    """(answer codec, question codec) that the data ``spec`` names, or None (files and humans name none)."""
    name = _builtin_name(spec)
    return BUILTIN_CODECS[name]() if name in BUILTIN_CODECS else None


def load_builtin(name: str, split: str) -> tuple[list[str], list[str]]:
    """(questions, answers) of the built-in dataset ``name``, split ``split``."""
    if name not in BUILTIN_DATASETS:
        raise DataError(
            f"unknown built-in dataset {name!r}; built-in datasets: {', '.join(sorted(BUILTIN_DATASETS))}"
        )
    return BUILTIN_DATASETS[name](split)
