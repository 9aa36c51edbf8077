"""A human writing numbers either in digits or in English words (a discrete latent)."""

from __future__ import annotations

import random

from retro.humans.base import StyledHuman

__all__ = ["NumberHuman", "number_to_words"]

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen \
seventeen eighteen nineteen".split()
)
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 1000, e.g. 342 -> 'three hundred forty-two'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    rest = n % 100
    return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))


class NumberHuman(StyledHuman):
    """Questions are numbers in digits (``"342"``); the answer writes it back in *digits* or in *words*
    (``"three hundred forty-two"``), the style being a latent. Typos in the letters/digits alphabet."""

    name = "numbers"
    description = "numbers written as digits or words; discrete style latent with typos"
    styles = ("digits", "words")
    typo_alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 -"
    style_probs = (0.35, 0.65)
    typo_rates = (0.01, 0.04)

    def intended(self, question: str, style: str) -> str:
        return question if style == "digits" else number_to_words(int(question))

    def draw_question(self, rng: random.Random) -> str:
        return str(rng.choice([rng.randint(0, 20), rng.randint(0, 99), rng.randint(100, 999)]))
