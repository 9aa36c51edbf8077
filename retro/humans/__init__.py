"""Built-in synthetic humans: ground-truth Pyro programs with exactly computable log p.

Each is both a data source (``human.draw(n, seed)``) and an imitator (it follows the program contract).
"""

from __future__ import annotations

from retro.errors import RetroError
from retro.humans.arithmetic import ArithmeticHuman
from retro.humans.base import SyntheticHuman
from retro.humans.numbers import NumberHuman
from retro.humans.typist import TypistHuman
from retro.text import Codec

__all__ = ["HUMANS", "SyntheticHuman", "ArithmeticHuman", "NumberHuman", "TypistHuman", "make_human"]

HUMANS: dict[str, type[SyntheticHuman]] = {
    cls.name: cls for cls in (ArithmeticHuman, NumberHuman, TypistHuman)
}


def make_human(name: str, codec: Codec | None = None, max_length: int = 32) -> SyntheticHuman:
    """The built-in human called ``name`` (see ``retro humans``)."""
    if name not in HUMANS:
        raise RetroError(f"unknown human {name!r}; built-in humans: {', '.join(sorted(HUMANS))}")
    return HUMANS[name](codec, max_length)
