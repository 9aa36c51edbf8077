"""Finite-set programs, tempered programs and verifiers: normalized laws, consistent samples, clear errors."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch

from programs import tiny_program
from retro.discriminators import NeuralDiscriminator, VerifierDiscriminator
from retro.errors import RetroError
from retro.finite import FiniteProgram
from retro.humans import make_human
from retro.inference import exact
from retro.tempering import tempered
from retro.text import AlphabetCodec, StringBatch, SymbolCodec
from retro.verifiers import Verifier, verifier_from_spec


def test_finite_program_scores_candidates_and_nothing_else(float64):
    program = FiniteProgram(lambda q: [(q + "a", 0.0), (q + "bb", math.log(3)), ("", 0.0)], max_length=6)
    values = [r.log_prob for r in exact(program, ["x"] * 4, ["xa", "xbb", "", "xb"]).records]
    assert values[:3] == pytest.approx([math.log(1 / 5), math.log(3 / 5), math.log(1 / 5)])
    assert values[3] == -math.inf


def test_finite_program_samples_follow_its_law():
    program = FiniteProgram(lambda q: [("a", 0.0), ("bb", math.log(3))], max_length=4)
    draws = program.sample(["q"], num_samples=4000)[0]
    share = Counter(draws)["bb"] / len(draws)
    assert abs(share - 0.75) < 4 * math.sqrt(0.75 * 0.25 / len(draws))
    with pytest.raises(RetroError, match="no candidate answers"):
        FiniteProgram(lambda q: [], max_length=4).sample(["q"])


def test_tempered_program_is_normalized_and_sharpens(float64):
    codec = AlphabetCodec("ab")
    human = make_human("typist", AlphabetCodec("abcdefghijklmnopqrstuvwxyz"), max_length=2).double()
    strings = [
        "".join(s) for n in range(3) for s in itertools.product("abcdefghijklmnopqrstuvwxyz", repeat=n)
    ]
    for temperature in (0.5, 2.0):
        values = torch.tensor(
            [r.log_prob for r in exact(tempered(human, temperature), ["go"] * len(strings), strings).records]
        )
        assert values.logsumexp(0).exp().item() == pytest.approx(1.0, abs=1e-6)
    cold, hot = (exact(tempered(human, t), ["go"], ["go"]).records[0].log_prob for t in (0.5, 2.0))
    assert cold > exact(human, ["go"], ["go"]).records[0].log_prob > hot
    assert tempered(human, 1.0) is human
    with pytest.raises(RetroError, match="temperature must be > 0"):
        tempered(human, 0.0)
    with pytest.raises(RetroError, match="StringDistribution"):
        tempered(FiniteProgram(lambda q: [("a", 0.0)], codec, 2), 2.0).sample(["a"])


def test_tempered_attention_imitator_keeps_its_memory_and_codecs(float64):
    """An imitator with an attention decoder and its own question codec stays a normalized law when tempered."""
    program, questions = tiny_program("seq2seq[attention]")
    program.double()
    cold = tempered(program, 0.5)
    assert cold.question_codec == program.question_codec != cold.codec
    strings = [program.codec.decode(s) for n in range(4) for s in itertools.product(range(2), repeat=n)]
    for question in questions:
        log_p = torch.tensor([r.log_prob for r in exact(cold, [question] * len(strings), strings).records])
        assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-9)
    assert len(cold.sample(questions, num_samples=2)) == 2


def test_verifier_errors_name_the_verifier_and_the_pair():
    def broken(question, answer):
        raise KeyError("boom")

    with pytest.raises(RetroError, match=r"verifier 'broken' raised KeyError on question '1\+1', answer '2'"):
        Verifier(broken, "broken").check(["1+1"], ["2"])
    with pytest.raises(RetroError, match="returned int 1 \\(expected bool\\)"):
        Verifier(lambda q, a: 1, "ones")("1+1", "2")
    with pytest.raises(RetroError, match="unknown verifier 'nope'"):
        verifier_from_spec("nope")
    with pytest.raises(RetroError, match="has no attribute 'missing'"):
        verifier_from_spec("math:missing")
    assert verifier_from_spec("math:isclose").name == "math:isclose"
    assert verifier_from_spec("arithmetic").check(["2-5", "2-5", "2-5"], ["-3", "2-5=-3", "3"]) == [
        True,
        True,
        False,
    ]


def test_discriminators_read_questions_in_the_question_codec():
    """An imitator whose questions and answers have different codecs: the verifier gets both decoded right."""
    questions, answers = AlphabetCodec("0123456789+-"), SymbolCodec(list("0123456789"))
    q = StringBatch.from_strings(["1+2", "4+4", "9-5"], questions)
    a = StringBatch.from_strings(["3", "7", "4"], answers)
    verifier = verifier_from_spec("arithmetic")
    logits = VerifierDiscriminator(verifier, answers, questions).logits(q, a)
    assert (logits > 0).tolist() == [True, False, True]
    neural = NeuralDiscriminator(answers, 4, hidden_dim=8, verifier=verifier, question_codec=questions)
    assert neural.logits(q, a).shape == (3,)
