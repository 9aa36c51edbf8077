"""Input checks shared by everything that takes questions, answers and counts from users: one-line errors."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from retro.errors import RetroError

__all__ = ["check_strings", "check_pairs", "check_positive_integer"]


def check_strings(values, what: str) -> None:
    """``values`` is a list (or tuple) of strings, not a bare string."""
    if isinstance(values, str | bytes):
        raise RetroError(
            f"{what} must be a list of strings, got one string {values[:40]!r} (wrap it in a list)"
        )
    if not isinstance(values, Sequence):
        raise RetroError(f"{what} must be a list of strings, got {type(values).__name__}")
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise RetroError(f"{what}[{index}] must be a string, got {type(value).__name__}")


def check_pairs(questions, answers, who: str) -> None:
    """Questions and answers are lists of strings of equal, non-zero length."""
    check_strings(questions, f"{who}: questions")
    check_strings(answers, f"{who}: answers")
    if len(questions) != len(answers):
        raise RetroError(
            f"{who}: need as many questions as answers, got {len(questions)} questions and {len(answers)} answers"
        )
    if not answers:
        raise RetroError(f"{who}: nothing to score (no answers)")


def check_positive_integer(value, what: str) -> None:
    """``value`` is an integer >= 1 (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise RetroError(f"{what} must be a positive integer, got {value!r}")
