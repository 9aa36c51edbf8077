"""Annealed importance sampling against exact values (float64; tolerances from the estimators' own errors)."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from programs import CareImitator
from retro.errors import RetroError
from retro.humans import TypistHuman, make_human
from retro.inference import AmortizedGuide, exact, importance
from retro.inference.ais import ais, sigmoid_schedule
from retro.models import LatentSeq2Seq, Seq2Seq
from retro.text import AlphabetCodec


def _arrays(records):
    return np.array([r.log_prob for r in records]), np.array([r.stderr for r in records])


def _agree(a, b, se_a, se_b=0.0, sigmas=4.0):
    """Fraction of answers whose two values agree within ``sigmas`` combined standard errors."""
    return np.mean(np.abs(a - b) <= sigmas * np.sqrt(se_a**2 + se_b**2) + 1e-12)


def _unbiased(a, b, se_a, se_b=0.0, sigmas=4.0) -> bool:
    """The mean difference over answers is within ``sigmas`` standard errors of that mean."""
    return abs(np.mean(a - b)) <= sigmas * np.sqrt(np.sum(se_a**2 + se_b**2)) / len(a)


class TwoLatentTypist(TypistHuman):
    """A typist whose typo rate depends on a vector latent ``habit[2]`` and a scalar ``sloppiness``.

    The rate depends on them only through ``u = sloppiness + 0.8 habit[0] - 0.6 habit[1]``, which is Normal, so
    :class:`OneLatentTypist` with ``u`` as its one latent has the same log p, exactly by quadrature."""

    name = "two-latent-typist"
    habit_loc, habit_scale = (0.5, -0.5), 0.7
    weights = (0.8, -0.6)

    def model(self, questions, answers=None):
        intended = self._intended_tokens(questions)[:, 0]
        loc = torch.tensor(self.habit_loc, device=intended.device)
        with self.answers_plate(questions):
            habit = pyro.sample("habit", dist.Normal(loc, self.habit_scale).to_event(1))
            sloppiness = pyro.sample("sloppiness", dist.Normal(torch.zeros((), device=loc.device), 1.0))
            u = sloppiness + self.weights[0] * habit[..., 0] + self.weights[1] * habit[..., 1]
            return self.observe(self.answer_distribution(intended, torch.sigmoid(-3.0 + 1.5 * u)), answers)

    @classmethod
    def u_law(cls) -> tuple[float, float]:
        mean = sum(w * m for w, m in zip(cls.weights, cls.habit_loc))
        var = 1.0 + cls.habit_scale**2 * sum(w * w for w in cls.weights)
        return mean, math.sqrt(var)


class OneLatentTypist(TypistHuman):
    """The marginal of :class:`TwoLatentTypist`: ``u ~ Normal(mean, sd)`` directly (exact by quadrature)."""

    name = "one-latent-typist"

    def model(self, questions, answers=None):
        intended = self._intended_tokens(questions)[:, 0]
        mean, sd = TwoLatentTypist.u_law()
        with self.answers_plate(questions):
            u = pyro.sample("u", dist.Normal(torch.full((), mean, device=intended.device), sd))
            return self.observe(self.answer_distribution(intended, torch.sigmoid(-3.0 + 1.5 * u)), answers)


class StyledTypist(TypistHuman):
    """A typist with a discrete style (careful / hasty) and a continuous sloppiness whose prior depends on it.

    With ``style`` fixed, the program has one scalar Normal latent, so log p = logsumexp over styles of
    log p(style) + exact log p(answer | style) by quadrature."""

    name = "styled-typist"
    style_probs = (0.3, 0.7)
    offsets = (-1.0, 0.5)
    locs = (-0.5, 0.5)

    def __init__(self, style: int | None = None):
        super().__init__()
        self.style = style

    def model(self, questions, answers=None):
        intended = self._intended_tokens(questions)[:, 0]
        offsets, locs = torch.tensor(self.offsets), torch.tensor(self.locs)
        with self.answers_plate(questions):
            if self.style is None:
                style = pyro.sample("style", dist.Categorical(torch.tensor(self.style_probs)))
            else:
                style = torch.tensor(self.style)
            sloppiness = pyro.sample("sloppiness", dist.Normal(locs[style], 1.0))
            rate = torch.sigmoid(offsets[style] - 3.0 + 1.5 * sloppiness)
            return self.observe(self.answer_distribution(intended, rate), answers)


class VectorStyleTypist(TypistHuman):
    """Two binary style switches as one vector-valued discrete site (cannot be enumerated)."""

    name = "vector-style-typist"

    def model(self, questions, answers=None):
        intended = self._intended_tokens(questions)[:, 0]
        with self.answers_plate(questions):
            switches = pyro.sample("switches", dist.Bernoulli(torch.full((2,), 0.5)).to_event(1))
            z = pyro.sample("sloppiness", dist.Normal(torch.zeros(()), 1.0))
            rate = torch.sigmoid(-3.0 + 1.5 * z + switches.sum(-1))
            return self.observe(self.answer_distribution(intended, rate), answers)


def test_typist_agrees_with_exact_at_the_default_budget(float64):
    """Acceptance: 200 typist answers, prior proposal, default budget: mean |error| <= 0.02 nats and >= 95% of
    answers within 4 SE of the exact value."""
    human = make_human("typist").double()
    questions, answers = human.draw(200, seed=11)
    truth, _ = _arrays(exact(human, questions, answers).records)
    records = ais(human, questions, answers, proposal="prior").records
    estimate, stderr = _arrays(records)
    assert all(r.method == "ais[prior]" and r.kind == "estimate" for r in records)
    assert np.all(np.isfinite(estimate)) and np.all(stderr > 0)
    assert np.mean(np.abs(estimate - truth)) <= 0.02
    assert _agree(estimate, truth, stderr) >= 0.95


def test_one_step_is_importance_sampling(float64):
    """num_steps=1: the weight is p(answer, z) / q(z) with z ~ q, i.e. importance sampling with that proposal.

    Same answers length and same seed: the same draws, so the same numbers; otherwise agreement in distribution."""
    human = make_human("typist").double()
    words = ["hello", "world", "there", "about", "other"]
    for proposal, guide in (("prior", None), ("guide", AmortizedGuide(human, hidden_dim=16).double())):
        torch.manual_seed(1)
        reference = importance(human, words, words, guide=guide, proposal=proposal, num_particles=64).records
        torch.manual_seed(1)
        one_step = ais(
            human, words, words, guide=guide, proposal=proposal, num_steps=1, num_particles=64
        ).records
        assert np.allclose(_arrays(one_step)[0], _arrays(reference)[0], rtol=0, atol=1e-10)
        assert one_step[0].method == f"ais[{proposal}]"

    questions, answers = human.draw(100, seed=12)
    is_est, is_se = _arrays(
        importance(human, questions, answers, proposal="prior", num_particles=256).records
    )
    ais_est, ais_se = _arrays(ais(human, questions, answers, num_steps=1, num_particles=256).records)
    assert _agree(ais_est, is_est, ais_se, is_se) >= 0.95
    assert _unbiased(ais_est, is_est, ais_se, is_se)


def test_step_sizes_adapt_toward_the_target_acceptance(float64):
    """After adaptation every answer's mean acceptance lies in [0.5, 0.95] (target 0.8), for a 1-D latent and an
    8-D latent with several leapfrog steps; a lower target gives lower acceptance."""
    human = make_human("typist").double()
    questions, answers = human.draw(50, seed=13)
    acceptance = ais(human, questions, answers, num_steps=24, num_particles=32).info.diagnostics["acceptance"]
    assert acceptance.shape == (50,)
    assert torch.all((acceptance >= 0.5) & (acceptance <= 0.95))
    assert abs(float(acceptance.mean()) - 0.8) < 0.05
    low = ais(human, questions, answers, num_steps=24, num_particles=32, target_accept=0.6)
    low = low.info.diagnostics["acceptance"]
    assert abs(float(low.mean()) - 0.6) < 0.05

    imitator = LatentSeq2Seq(max_length=12, hidden_dim=16, latent_dim=8).double()
    acceptance = ais(
        imitator, questions[:10], answers[:10], num_steps=16, num_particles=16, leapfrog_steps=3
    ).info.diagnostics["acceptance"]
    assert torch.all((acceptance >= 0.5) & (acceptance <= 0.95))


def test_two_continuous_sites_agree_with_exact_and_importance(float64):
    """A vector and a scalar latent, with a non-standard prior: AIS agrees with the exact value (the rate depends on
    one Normal combination of them) and with prior importance sampling with many particles."""
    program, marginal = TwoLatentTypist().double(), OneLatentTypist().double()
    questions, answers = program.draw(60, seed=14)
    truth, _ = _arrays(exact(marginal, questions, answers).records)
    records, info = ais(program, questions, answers, num_steps=32, num_particles=64)
    acceptance = info.diagnostics["acceptance"]
    estimate, stderr = _arrays(records)
    assert _agree(estimate, truth, stderr) >= 0.95
    assert _unbiased(estimate, truth, stderr)
    reference, reference_se = _arrays(
        importance(program, questions, answers, proposal="prior", num_particles=20_000).records
    )
    assert _agree(estimate, reference, stderr, reference_se) >= 0.95
    assert _unbiased(estimate, reference, stderr, reference_se)
    assert torch.all((acceptance >= 0.5) & (acceptance <= 0.95))


def test_discrete_latents_are_summed_out(float64):
    """A discrete style beside the continuous latent: enumerated inside every density, AIS (prior and guide
    proposals) agrees with logsumexp over styles of the exact per-style values."""
    program = StyledTypist().double()
    questions, answers = program.draw(40, seed=15)
    per_style = [
        math.log(p) + _arrays(exact(StyledTypist(style).double(), questions, answers).records)[0]
        for style, p in enumerate(StyledTypist.style_probs)
    ]
    truth = np.logaddexp(*per_style)
    estimate, stderr = _arrays(ais(program, questions, answers, num_steps=32, num_particles=64).records)
    assert _agree(estimate, truth, stderr) >= 0.95
    assert _unbiased(estimate, truth, stderr)
    guide = AmortizedGuide(program, hidden_dim=16).double()
    guided, guided_se = _arrays(
        ais(program, questions, answers, guide=guide, proposal="guide", num_particles=64).records
    )
    assert _agree(guided, truth, guided_se) >= 0.95
    assert _unbiased(guided, truth, guided_se)


def test_a_users_imitator_with_discrete_and_continuous_latents_runs(float64):
    program = CareImitator(AlphabetCodec("ab"), max_length=4).double()
    questions, answers = ["ab", "b", "a"], ["ab", "", "bba"]
    estimate, stderr = _arrays(ais(program, questions, answers, num_steps=8, num_particles=32).records)
    reference, reference_se = _arrays(
        importance(program, questions, answers, proposal="prior", num_particles=4000).records
    )
    assert np.all(np.abs(estimate - reference) <= 4 * np.sqrt(stderr**2 + reference_se**2) + 1e-9)


def test_memory_bound_does_not_change_results(float64):
    """Chunks of answers and of chains (max_rows below num_chains) give the records of one chunk, to 1e-10: the
    step sizes come from the 6 pilot chains that run beside every chunk of chains, so all chunks follow the same
    step sizes; and they agree
    with exact within their error."""
    human = make_human("typist").double()
    questions, answers = human.draw(20, seed=16)
    truth, _ = _arrays(exact(human, questions, answers).records)
    whole, info = ais(human, questions, answers, num_steps=16, num_particles=48, seed=3)
    cut = ais(human, questions, answers, num_steps=16, num_particles=48, seed=3, max_rows=20)
    estimate, stderr = _arrays(cut.records)
    assert np.allclose(estimate, _arrays(whole)[0], rtol=0, atol=1e-10)
    steps, cut_steps = info.diagnostics["step_sizes"], cut.info.diagnostics["step_sizes"]
    assert torch.allclose(steps, cut_steps, rtol=0, atol=1e-10)
    assert _agree(estimate, truth, stderr) >= 0.9


def test_impossible_answers_and_programs_without_continuous_latents(float64):
    human = make_human("typist").double()
    records = ais(human, ["hello", "cat"], ["HELLO", "cat"], num_steps=4, num_particles=8).records
    assert records[0].log_prob == -math.inf and math.isfinite(records[1].log_prob)

    model = Seq2Seq(max_length=8, hidden_dim=16)
    assert ais(model, ["q"], ["ab"]).records[0].kind == "exact"
    arithmetic = make_human("arithmetic").double()
    questions, answers = arithmetic.draw(5, seed=17)
    scored, info = ais(arithmetic, questions, answers)
    assert [(r.log_prob, r.kind) for r in scored] == [
        (r.log_prob, r.kind) for r in exact(arithmetic, questions, answers).records
    ]
    assert info.method == "exact" and "acceptance" not in info.diagnostics


def test_bad_settings_are_clear_errors():
    human = make_human("typist")
    with pytest.raises(RetroError, match="needs a trained guide"):
        ais(human, ["hello"], ["helo"], proposal="guide")
    with pytest.raises(RetroError, match="unknown proposal"):
        ais(human, ["hello"], ["helo"], proposal="mixture")
    with pytest.raises(RetroError, match="num_particles must be a positive integer"):
        ais(human, ["hello"], ["helo"], num_particles=0)
    with pytest.raises(RetroError, match="target_accept"):
        ais(human, ["hello"], ["helo"], target_accept=1.0)
    with pytest.raises(RetroError, match="vector-valued discrete latent sites \\(switches\\)"):
        ais(VectorStyleTypist(), ["hello"], ["helo"])


def test_sigmoid_schedule():
    betas = sigmoid_schedule(10)
    assert betas[0] == 0 and betas[-1] == 1 and torch.all(betas.diff() > 0)
    assert torch.equal(sigmoid_schedule(1), torch.tensor([0.0, 1.0], dtype=torch.float64))
