"""A human answering sums and differences in one of three styles (a discrete latent)."""

from __future__ import annotations

import random

from retro.humans.base import StyledHuman

__all__ = ["ArithmeticHuman"]


class ArithmeticHuman(StyledHuman):
    """Questions like ``"12+7"``. Style (latent, per answer): *terse* ``"19"`` (few typos), *verbose*
    ``"12+7=19"``, or *sloppy* (terse, many typos). Exact log p: sum over the three styles."""

    name = "arithmetic"
    description = "sums/differences; discrete style latent (terse, verbose, sloppy) with typos"
    styles = ("terse", "verbose", "sloppy")
    typo_alphabet = "0123456789+-="
    style_probs = (0.5, 0.3, 0.2)
    typo_rates = (0.02, 0.03, 0.25)

    def intended(self, question: str, style: str) -> str:
        if "+" in question:
            a, b = question.split("+")
            value = int(a) + int(b)
        else:
            a, b = question.split("-")
            value = int(a) - int(b)
        return f"{question}={value}" if style == "verbose" else str(value)

    def draw_question(self, rng: random.Random) -> str:
        return f"{rng.randint(0, 20)}{rng.choice('+-')}{rng.randint(0, 20)}"
