"""Edit distance, WER and PER on hand-computed examples."""

from __future__ import annotations

import math

import pytest

from retro.errors import RetroError
from retro.inference.metrics import (
    closest_reference,
    edit_distance,
    group_answers,
    phoneme_error_rate,
    token_edit_distance,
    word_error_rate,
)


@pytest.mark.parametrize(
    "a, b, distance",
    [
        ("", "", 0),
        ("abc", "", 3),
        ("", "ab", 2),
        ("kitten", "sitting", 3),  # 2 substitutions + 1 insertion
        ("flaw", "lawn", 2),  # 1 deletion + 1 insertion
        ("abc", "abc", 0),
        ("ab", "ba", 2),  # no transpositions in Levenshtein
    ],
)
def test_edit_distance(a, b, distance):
    assert edit_distance(a, b) == distance == edit_distance(b, a)


def test_token_edit_distance_counts_whitespace_tokens():
    assert token_edit_distance("K AE1 T", "K AE1 T") == 0
    assert token_edit_distance("K AE1  T ", "K AE1 T") == 0  # any whitespace separates
    assert token_edit_distance("K AE1 T", "K AE0 T S") == 2  # one substitution, one insertion
    assert token_edit_distance("", "HH AH0") == 2
    assert token_edit_distance("AE1", "AE") == 1  # tokens compare whole, not by character


def test_group_answers_keeps_order_and_drops_repeats():
    grouped = group_answers(["read", "cat", "read", "read"], ["R IY1 D", "K AE1 T", "R EH1 D", "R IY1 D"])
    assert grouped == {"read": ["R IY1 D", "R EH1 D"], "cat": ["K AE1 T"]}
    assert list(grouped) == ["read", "cat"]


def test_closest_reference_prefers_the_first_on_ties():
    assert closest_reference("R EH1 D", ["R IY1 D", "R EH1 D"]) == (0, "R EH1 D")
    assert closest_reference("R AH0 D", ["R IY1 D", "R EH1 D"]) == (1, "R IY1 D")


# "read" has two pronunciations; either one is correct.
REFERENCES = {
    "read": ["R IY1 D", "R EH1 D"],
    "cat": ["K AE1 T"],
    "through": ["TH R UW1"],
    "a": ["AH0", "EY1"],
}


def test_error_rates_by_hand():
    questions = ["read", "cat", "through", "a"]
    hypotheses = ["R EH1 D", "K AE1 T S", "TH UW1", "EY1"]
    # read: second pronunciation, 0 edits (closest has 3 tokens); cat: 1 insertion (3); through: 1 deletion (3);
    # a: second pronunciation, 0 edits (1).
    assert word_error_rate(questions, hypotheses, REFERENCES) == pytest.approx(2 / 4)
    assert phoneme_error_rate(questions, hypotheses, REFERENCES) == pytest.approx(
        (0 + 1 + 1 + 0) / (3 + 3 + 3 + 1)
    )


def test_per_divides_by_the_closest_answer_length():
    # "R IY1 D Z" is 1 edit from "R IY1 D" (3 tokens) and 2 from "R EH1 D Z Z" (5 tokens): the closest counts.
    references = {"reads": ["R EH1 D Z Z", "R IY1 D"]}
    assert phoneme_error_rate(["reads"], ["R IY1 D Z"], references) == pytest.approx(1 / 3)
    assert word_error_rate(["reads"], ["R IY1 D Z"], references) == 1.0


def test_perfect_and_empty_cases():
    questions = list(REFERENCES)
    hypotheses = [refs[-1] for refs in REFERENCES.values()]
    assert word_error_rate(questions, hypotheses, REFERENCES) == 0.0
    assert phoneme_error_rate(questions, hypotheses, REFERENCES) == 0.0
    assert phoneme_error_rate(["q"], [""], {"q": [""]}) == 0.0
    assert math.isinf(phoneme_error_rate(["q"], ["X"], {"q": [""]}))


def test_errors_name_the_problem():
    with pytest.raises(RetroError, match="'dog' has no human answer"):
        word_error_rate(["dog"], ["D AO1 G"], REFERENCES)
    with pytest.raises(RetroError, match="2 questions but 1"):
        phoneme_error_rate(["cat", "read"], ["K AE1 T"], REFERENCES)
    with pytest.raises(RetroError, match="no answers"):
        word_error_rate([], [], REFERENCES)
