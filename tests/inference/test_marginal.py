"""The marginal over tokenizations: exact enumeration sums to one over every string, bounds the canonical
tokenization from above, and importance sampling over tokenizations (and latents) is calibrated against it."""

import itertools
import math

import numpy as np
import pytest
import torch

from retro.errors import RetroError
from retro.inference import AmortizedGuide, estimate, exact
from retro.inference.marginal import exact_marginal, marginal_importance
from retro.models import make_imitator
from retro.pieces import PieceCodec
from retro.text import Codec
from retro.tokenizations import TokenLattice, answer_bytes, sample_tokenizations

PIECES = ["a", "b", "c", "ab", "bc", "ca", "abc"]


def strings_up_to(length: int) -> list[str]:
    return ["".join(p) for n in range(length + 1) for p in itertools.product("abc", repeat=n)]


def spelled_by(codec: PieceCodec, max_tokens: int) -> dict[str, list[tuple[int, ...]]]:
    """Every string spelled by at most ``max_tokens`` tokens, with the token sequences that spell it."""
    out: dict[str, list[tuple[int, ...]]] = {}
    for n in range(max_tokens + 1):
        for seq in itertools.product(range(codec.num_symbols), repeat=n):
            out.setdefault(codec.decode(seq), []).append(seq)
    return out


def test_lattice_lists_every_tokenization_once():
    codec = PieceCodec(PIECES)
    lattice = TokenLattice(codec)
    brute = spelled_by(codec, 4)
    for text in strings_up_to(5):
        for max_tokens in (2, 3, 4):
            paths = lattice.tokenizations(text.encode(), max_tokens)
            assert len(set(paths)) == len(paths) == lattice.count(text.encode(), max_tokens)
            assert sorted(paths) == sorted(p for p in brute.get(text, []) if len(p) <= max_tokens)


def test_marginal_sums_to_one_and_bounds_the_canonical_tokenization(float64):
    codec = PieceCodec(PIECES)
    program = make_imitator("seq2seq", codec=codec, max_length=3, hidden_dim=16)
    spelled = spelled_by(codec, 3)  # every string with non-zero probability
    reachable = sorted(spelled)
    lattice = TokenLattice(codec)
    assert all(lattice.count(t.encode(), 3) == 0 for t in strings_up_to(5) if t not in spelled)
    for question in ("ab", "cca"):
        marginal = exact_marginal(program, [question] * len(reachable), reachable).records
        total = torch.tensor([r.log_prob for r in marginal]).logsumexp(0).exp().item()
        assert abs(total - 1.0) < 1e-6
        canonical = exact(program, [question] * len(reachable), reachable).records
        for c, m in zip(canonical, marginal):
            assert (c.target, m.target, m.kind) == ("canonical", "marginal", "exact")
            assert c.log_prob <= m.log_prob + 1e-12
            assert m.num_particles == len(spelled[m.answer])
            if m.num_particles == 1:
                assert m.log_prob == pytest.approx(c.log_prob, abs=1e-12)
            else:
                assert m.log_prob > c.log_prob + 1e-9


def test_sampled_tokenizations_spell_the_string(float64):
    codec = PieceCodec(PIECES)
    program = make_imitator("seq2seq", codec=codec, max_length=4, hidden_dim=16)
    answers = ["abcab", "", "cab", "abcabcabca"]
    questions = program.encode_questions(["a"] * len(answers))
    distribution = program.answer_distribution(program.encode(questions))
    targets = [t.encode() for t in answers]
    tokens, log_weight = sample_tokenizations(distribution, torch.Size([50, 4]), targets, TokenLattice(codec))
    assert torch.isfinite(log_weight).all() and (log_weight <= 1e-12).all()
    for k in range(50):
        for b in range(len(answers)):
            row = tokens[k, b].tolist()
            length = row.index(codec.eos) if codec.eos in row else len(row)
            assert answer_bytes(codec, row[:length]) == targets[b] and length <= 4


def test_marginal_importance_is_calibrated_against_enumeration(float64):
    """z = (estimate - exact) / stderr over independent runs: 95% within 1.96 (4 binomial standard errors), mean z^2
    near 1 (4 of its standard errors). A program with a discrete latent (summed out exactly by enumeration, drawn
    from the prior by importance sampling) composed with the tokenization."""
    codec = PieceCodec(PIECES)
    program = make_imitator("mixture", codec=codec, max_length=4, hidden_dim=16)
    answers = ["abc", "abca", "bcab", "cabc", "aabc", "ca", "abcabc", "bca"]
    questions = ["ab", "c", "abc", "b", "a", "bc", "ca", "cb"]
    truth = [r.log_prob for r in exact_marginal(program, questions, answers).records]
    replicates = 30
    records = marginal_importance(
        program, questions * replicates, answers * replicates, proposal="prior", num_particles=80
    ).records
    z = np.array([(r.log_prob - truth[i % len(answers)]) / r.stderr for i, r in enumerate(records)])
    n = len(z)
    covered = np.mean(np.abs(z) <= 1.96)
    assert abs(covered - 0.95) <= 4 * math.sqrt(0.95 * 0.05 / n)
    assert abs(np.mean(z**2) - 1.0) <= 4 * np.std(z**2) / math.sqrt(n)
    assert all(r.target == "marginal" and r.kind == "estimate" and r.num_particles == 80 for r in records)
    assert all(r.ess > 1 for r in records)


def test_marginal_importance_with_a_guide_agrees_with_enumeration(float64):
    codec = PieceCodec(PIECES)
    program = make_imitator("latent", codec=codec, max_length=4, hidden_dim=16, latent_dim=1)
    guide = AmortizedGuide(program, hidden_dim=8)
    answers, questions = ["abca", "cab", "bcab"], ["a", "b", "c"]
    truth = exact_marginal(program, questions, answers).records
    for record, exact_record in zip(
        marginal_importance(
            program, questions, answers, guide=guide, proposal="mixture", num_particles=2000
        ).records,
        truth,
    ):
        assert record.method == "marginal[mixture]"
        assert abs(record.log_prob - exact_record.log_prob) <= 4 * record.stderr + 1e-9


def test_a_unique_tokenization_has_no_doubt(float64):
    codec = PieceCodec(PIECES)
    program = make_imitator("seq2seq", codec=codec, max_length=4, hidden_dim=16)
    (record,) = marginal_importance(
        program, ["a"], ["cb"], num_particles=50
    ).records  # c|b is the only spelling
    (canonical,) = exact(program, ["a"], ["cb"]).records
    assert record.log_prob == pytest.approx(canonical.log_prob, abs=1e-12) and record.ess == pytest.approx(50)


def test_fixed_codecs_spell_uniquely_and_other_codecs_need_token_bytes():
    program = make_imitator("latent", max_length=4, hidden_dim=16, latent_dim=1)  # ByteCodec: one spelling
    marginal = estimate("exact-marginal", program, ["a"], ["b"]).records[0]
    canonical = estimate("exact", program, ["a"], ["b"]).records[0]
    assert marginal.log_prob == canonical.log_prob and marginal.target == "marginal"
    sampled = estimate("marginal[prior]", program, ["a"], ["b"], num_particles=20, seed=1).records[0]
    same = estimate("importance[prior]", program, ["a"], ["b"], num_particles=20, seed=1).records[0]
    assert sampled.log_prob == same.log_prob and sampled.method == "marginal[prior]"

    class Pieces(Codec):  # a user's codec that spells strings in several ways but does not say how
        num_symbols = 3

        def encode(self, text):
            return [{"a": 0, "b": 1, "ab": 2}[c] for c in text]

        def config(self):
            return {"type": "user"}

    custom = make_imitator("seq2seq", codec=Pieces(), max_length=4, hidden_dim=16)
    with pytest.raises(RetroError, match="token_bytes"):
        exact_marginal(custom, ["a"], ["b"])


def test_tokenizations_drawn_from_given_uniforms_do_not_depend_on_the_batch(float64):
    codec = PieceCodec(PIECES)
    program = make_imitator("seq2seq", codec=codec, max_length=5, hidden_dim=16)
    answers = ["abcab", "cabca"]
    lattice = TokenLattice(codec)
    u = torch.rand(64, 2, 5)

    def draw(index):
        questions = program.encode_questions(["a", "b"])[index]
        distribution = program.answer_distribution(program.encode(questions))
        targets = [answers[i].encode() for i in index]
        return sample_tokenizations(distribution, torch.Size([64, len(index)]), targets, lattice, u[:, index])

    both_tokens, both_weights = draw([0, 1])
    for i in (0, 1):
        tokens, weights = draw([i])
        assert torch.equal(tokens[:, 0], both_tokens[:, i])
        assert torch.allclose(weights[:, 0], both_weights[:, i], atol=1e-12, rtol=0)
    assert len({tuple(row) for row in both_tokens[:, 0].tolist()}) > 1  # the uniforms do pick different paths


def test_registered_and_independent_of_how_the_work_is_cut(float64):
    """Both estimators are in the registry; with a seed, an answer's draws come from its keyed stream, so the
    records do not depend on max_rows (chunks of particles and answers) or on the other answers in the batch."""
    codec = PieceCodec(PIECES)
    program = make_imitator("latent", codec=codec, max_length=4, hidden_dim=16, latent_dim=2)
    answers, questions = ["abca", "cab", "bcab", "c"], ["a", "b", "c", "ab"]
    whole = estimate("marginal[prior]", program, questions, answers, num_particles=40, seed=7)
    cut = estimate("marginal", program, questions, answers, num_particles=40, seed=7, max_rows=12)
    alone = estimate(
        "marginal", program, questions[2:3], answers[2:3], num_particles=40, seed=7, answer_ids=[2]
    )
    for a, b in zip(whole.records, cut.records):
        assert (
            a.log_prob == pytest.approx(b.log_prob, abs=1e-10) and a.method == b.method == "marginal[prior]"
        )
    assert alone.records[0].log_prob == pytest.approx(whole.records[2].log_prob, abs=1e-10)
    assert whole.info.log_weights.shape == (40, 4)
    with pytest.raises(RetroError, match="summ|exact"):  # two Normal latents: no exact sum over them
        estimate("exact-marginal", program, questions, answers)
