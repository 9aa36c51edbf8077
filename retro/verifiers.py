"""Verifiers: programmatic checks ``(question, answer) -> bool`` that a human's answer always passes.

A verifier catches absolute failures (a wrong sum, an invalid Sudoku grid) that no amount of style can hide. It is
used alone as a discriminator, as an extra input feature of a neural discriminator, and for the verifier pass rate
of an imitator's samples. User code is called through :class:`Verifier`, which turns an exception or a non-bool
result into a one-line :class:`~retro.errors.RetroError` naming the verifier and the pair.

Example:
    >>> verifier = verifier_from_spec("arithmetic")
    >>> verifier.check(["2+3", "2+3", "2+3"], ["5", "2+3=5", "6"])
    [True, True, False]
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from retro.errors import RetroError
from retro.sudoku import is_solution

__all__ = ["Verifier", "VERIFIERS", "verifier_from_spec"]


def _preview(text: str, width: int = 30) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


class Verifier:
    """A named check ``fn(question, answer) -> bool`` with clear errors for user code that misbehaves."""

    def __init__(self, fn: Callable[[str, str], bool], name: str | None = None):
        if not callable(fn):
            raise RetroError(f"verifier {name or fn!r} is not callable")
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", repr(fn))

    def __call__(self, question: str, answer: str) -> bool:
        try:
            result = self.fn(question, answer)
        except Exception as e:  # user code: report which verifier failed on which pair, in one line
            raise RetroError(
                f"verifier {self.name!r} raised {type(e).__name__} on question {_preview(question)}, "
                f"answer {_preview(answer)}: {str(e).splitlines()[0] if str(e) else ''}"
            ) from None
        if not isinstance(result, bool):  # numpy bools and 0/1 are ambiguous: ask for a real bool
            raise RetroError(
                f"verifier {self.name!r} returned {type(result).__name__} {result!r} (expected bool) on question "
                f"{_preview(question)}, answer {_preview(answer)}"
            )
        return result

    def check(self, questions: Sequence[str], answers: Sequence[str]) -> list[bool]:
        """The verdict for each (question, answer) pair."""
        if len(questions) != len(answers):
            raise RetroError(f"verifier {self.name!r}: {len(questions)} questions but {len(answers)} answers")
        return [self(q, a) for q, a in zip(questions, answers)]

    def __repr__(self) -> str:
        return f"Verifier({self.name!r})"


def _arithmetic(question: str, answer: str) -> bool:
    """The arithmetic human's questions ``"a+b"`` / ``"a-b"``: the right value, tersely or as ``"a+b=value"``."""
    left, op, right = question.partition("+") if "+" in question else question.partition("-")
    value = int(left) + int(right) if op == "+" else int(left) - int(right)
    return answer in (str(value), f"{question}={value}")


VERIFIERS: dict[str, Callable[[str, str], bool]] = {"arithmetic": _arithmetic, "sudoku": is_solution}


def verifier_from_spec(spec: str) -> Verifier:
    """A built-in verifier by name (``arithmetic``, ``sudoku``) or ``package.module:function``."""
    if spec in VERIFIERS:
        return Verifier(VERIFIERS[spec], spec)
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise RetroError(
            f"unknown verifier {spec!r}; built-in verifiers: {', '.join(sorted(VERIFIERS))}, "
            "or give package.module:function"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or whatever the user's module raises while importing
        raise RetroError(
            f"verifier {spec!r}: cannot import {module_name!r} ({type(e).__name__}: {e})"
        ) from None
    if not hasattr(module, attribute):
        raise RetroError(f"verifier {spec!r}: module {module_name!r} has no attribute {attribute!r}")
    return Verifier(getattr(module, attribute), spec)
