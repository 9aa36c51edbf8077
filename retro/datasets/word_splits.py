"""What the built-in word datasets share: pairs from a word -> answers table, cut into the word's split."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from retro.errors import DataError

__all__ = ["SPLITS", "split_pairs", "check_split"]

SPLITS = ("train", "test")


def check_split(dataset: str, split: str) -> None:
    """A ``DataError`` naming ``builtin:DATASET`` unless ``split`` is one of :data:`SPLITS`."""
    if split not in SPLITS:
        raise DataError(f"builtin:{dataset}: unknown split {split!r}; splits: {', '.join(SPLITS)}")


def split_pairs(
    answers_of: Mapping[str, Sequence[str]], split_of: Callable[[str], str], split: str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(questions, answers): one pair per answer of each word whose split is ``split``, in the table's order."""
    questions: list[str] = []
    answers: list[str] = []
    for word, its_answers in answers_of.items():
        if split_of(word) == split:
            questions.extend([word] * len(its_answers))
            answers.extend(its_answers)
    return tuple(questions), tuple(answers)
