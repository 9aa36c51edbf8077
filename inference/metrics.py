"""Error rates of 1-best answers against human answers: token edit distance, WER and PER (as in G2P).

PER counts edits in the units of the answer codec (:func:`error_units`): symbols for a
:class:`~retro.text.SymbolCodec` (the phonemes of a G2P pronunciation such as ``"K AE1 T"``: a symbol error
rate), characters for byte and alphabet codecs (a character error rate). The functions below take the units as a
``tokenize`` function; without one they compare whitespace-separated tokens. A question may have several human
answers (a word with two pronunciations): they are grouped by question, and each 1-best is judged against the
answer closest to it.

Example:
    >>> references = group_answers(["read", "read", "cat"], ["R IY1 D", "R EH1 D", "K AE1 T"])
    >>> word_error_rate(["read", "cat"], ["R EH1 D", "K AE1 D"], references)
    0.5
    >>> phoneme_error_rate(["read", "cat"], ["R EH1 D", "K AE1 D"], references)
    0.16666666666666666
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple

from retro.errors import RetroError
from retro.text import Codec, SymbolCodec

__all__ = [
    "edit_distance",
    "token_edit_distance",
    "closest_reference",
    "group_answers",
    "word_error_rate",
    "phoneme_error_rate",
    "token_error_rate",
    "ErrorUnits",
    "error_units",
]

Tokenize = Callable[[str], Sequence[Hashable]]


class ErrorUnits(NamedTuple):
    """What an error rate counts: its name (``"symbol error rate"``, ``"character error rate"``) and the function
    that cuts an answer into those units."""

    name: str
    tokenize: Tokenize


def _symbols(separator: str) -> Tokenize:
    return lambda text: text.split(separator) if text else []


def error_units(codec: Codec) -> ErrorUnits:
    """The units of ``codec``'s answers: symbols for a :class:`~retro.text.SymbolCodec`, else characters (byte and
    alphabet codecs; a byte codec's multi-byte character counts once)."""
    if isinstance(codec, SymbolCodec):
        return ErrorUnits("symbol error rate", _symbols(codec.separator))
    return ErrorUnits("character error rate", list)


def edit_distance(hypothesis: Sequence[Hashable], reference: Sequence[Hashable]) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning one sequence into the other."""
    previous = list(range(len(reference) + 1))
    for i, h in enumerate(hypothesis, 1):
        current = [i]
        for j, r in enumerate(reference, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (h != r)))
        previous = current
    return previous[-1]


def token_edit_distance(hypothesis: str, reference: str, tokenize: Tokenize = str.split) -> int:
    """:func:`edit_distance` over the tokens of ``tokenize`` (default: whitespace-separated)."""
    return edit_distance(tokenize(hypothesis), tokenize(reference))


def closest_reference(
    hypothesis: str, references: Sequence[str], tokenize: Tokenize = str.split
) -> tuple[int, str]:
    """(token edit distance, reference) of the reference closest to ``hypothesis`` (the first one on ties)."""
    if not references:
        raise RetroError(f"no human answer to compare the answer {hypothesis!r} with")
    distances = ((token_edit_distance(hypothesis, r, tokenize), r) for r in references)
    return min(distances, key=lambda pair: pair[0])


def group_answers(questions: Sequence[str], answers: Sequence[str]) -> dict[str, list[str]]:
    """The human answers of each question (questions in order of first appearance; duplicate answers kept once)."""
    if len(questions) != len(answers):
        raise RetroError(f"{len(questions)} questions but {len(answers)} answers")
    grouped: dict[str, list[str]] = {}
    for question, answer in zip(questions, answers):
        references = grouped.setdefault(question, [])
        if answer not in references:
            references.append(answer)
    return grouped


def _references(
    questions: Sequence[str], hypotheses: Sequence[str], references_by_question: dict[str, Sequence[str]]
) -> list[Sequence[str]]:
    if len(questions) != len(hypotheses):
        raise RetroError(f"{len(questions)} questions but {len(hypotheses)} answers to judge")
    if not questions:
        raise RetroError("no answers to judge")
    missing = [q for q in questions if not references_by_question.get(q)]
    if missing:
        raise RetroError(f"question {missing[0]!r} has no human answer to compare with")
    return [references_by_question[q] for q in questions]


def word_error_rate(
    questions: Sequence[str], hypotheses: Sequence[str], references_by_question: dict[str, Sequence[str]]
) -> float:
    """Fraction of questions whose 1-best answer equals none of that question's human answers (exact strings)."""
    references = _references(questions, hypotheses, references_by_question)
    wrong = sum(h not in refs for h, refs in zip(hypotheses, references))
    return wrong / len(questions)


def token_error_rate(
    questions: Sequence[str],
    hypotheses: Sequence[str],
    references_by_question: dict[str, Sequence[str]],
    tokenize: Tokenize = str.split,
) -> float:
    """Corpus-level token error rate: the token edit distance of each 1-best to its closest human answer, summed
    over questions, divided by the summed token lengths of those closest answers (tokens: ``tokenize``'s, e.g.
    :func:`error_units` of the answer codec; default whitespace-separated).

    When every closest answer is empty the rate is 0 without edits and ``inf`` with some.
    """
    references = _references(questions, hypotheses, references_by_question)
    edits = length = 0
    for hypothesis, refs in zip(hypotheses, references):
        distance, closest = closest_reference(hypothesis, refs, tokenize)
        edits += distance
        length += len(tokenize(closest))
    if length == 0:
        return 0.0 if edits == 0 else math.inf
    return edits / length


def phoneme_error_rate(
    questions: Sequence[str], hypotheses: Sequence[str], references_by_question: dict[str, Sequence[str]]
) -> float:
    """:func:`token_error_rate` over whitespace-separated tokens (phonemes written ``"K AE1 T"``)."""
    return token_error_rate(questions, hypotheses, references_by_question)
