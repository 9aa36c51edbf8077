"""Posterior collapse tools (KL annealing, free bits) and diagnostics (KL, mutual information, active units)."""

from __future__ import annotations

import math

import pytest
import torch

from retro.errors import RetroError
from retro.humans import make_human
from retro.inference import AmortizedGuide, elbo
from retro.inference.collapse import CollapseAwareELBO, collapse_diagnostics, kl_weight
from retro.inference.train import TrainConfig, train
from retro.models import make_imitator


@pytest.fixture(scope="module")
def data():
    human = make_human("typist")
    return human.draw(600, seed=0), human.draw(100, seed=1)


def _model(latent_dim=4):
    torch.manual_seed(0)
    imitator = make_imitator("latent", hidden_dim=32, latent_dim=latent_dim, max_length=32)
    return imitator, AmortizedGuide(imitator, hidden_dim=32)


def test_schedules():
    assert [kl_weight(s, "linear", warmup=4) for s in (1, 2, 4, 8)] == [0.25, 0.5, 1.0, 1.0]
    assert [kl_weight(s, "cyclical", cycle=4, ratio=0.5) for s in (1, 2, 3, 4, 5)] == [
        0.0,
        0.5,
        1.0,
        1.0,
        0.0,
    ]
    assert kl_weight(7, "none") == 1.0
    with pytest.raises(RetroError, match="unknown KL schedule"):
        kl_weight(1, "sometimes")


def test_without_annealing_it_is_minus_the_elbo(data, float64):
    """Closed-form KL instead of a Monte Carlo one: the same value in expectation (tolerance: 4 standard errors)."""
    (_, _), (questions, answers) = data
    imitator, guide = _model()
    imitator.double(), guide.double()
    objective = CollapseAwareELBO(imitator, guide, schedule="none")
    q, a = imitator.encode_questions(questions[:40]), imitator.encode_answers(answers[:40])
    with torch.no_grad():
        values = torch.stack([objective(q, a) for _ in range(100)])
    records = elbo(imitator, questions[:40], answers[:40], guide=guide, num_particles=400).records
    mc = -sum(r.log_prob for r in records) / 40
    mc_se = math.sqrt(sum(r.stderr**2 for r in records)) / 40
    se = math.hypot(values.std().item() / 10, mc_se)
    assert abs(values.mean().item() - mc) < 4 * se + 1e-9


def test_free_bits_stop_the_kl_gradient_below_the_floor(data):
    """With a floor above every dimension's KL, the KL term is constant: the guide's gradient is exactly that of
    the reconstruction term alone (same random draws); without the floor it is not."""
    (_, _), (questions, answers) = data
    imitator, guide = _model()
    q, a = imitator.encode_questions(questions[:16]), imitator.encode_answers(answers[:16])

    def guide_gradient(free_bits, beta_zero=False):
        objective = CollapseAwareELBO(imitator, guide, schedule="none", free_bits=free_bits)
        if beta_zero:  # reconstruction only: a cyclical schedule's first step has beta = 0
            objective = CollapseAwareELBO(imitator, guide, schedule="cyclical", cycle=10, free_bits=0.0)
        guide.zero_grad()
        torch.manual_seed(1)
        objective(q, a).backward()
        return torch.cat([p.grad.flatten() for p in guide.parameters() if p.grad is not None])

    reconstruction_only = guide_gradient(0.0, beta_zero=True)
    assert torch.allclose(guide_gradient(100.0), reconstruction_only)
    assert not torch.allclose(guide_gradient(0.0), reconstruction_only)


@pytest.mark.slow
def test_diagnostics_see_collapse_and_free_bits_prevent_it(data):
    (questions, answers), heldout = data
    collapsed_guide = _model()[1]
    with torch.no_grad():  # a guide that ignores the answer and outputs the prior: fully collapsed
        collapsed_guide.heads["z"].weight.zero_()
        collapsed_guide.heads["z"].bias.copy_(torch.tensor([0.0] * 4 + [0.5413] * 4))  # softplus -> 1
    imitator = _model()[0]
    d = collapse_diagnostics(imitator, collapsed_guide, *heldout)
    assert d.active_units == 0 and d.kl < 1e-3 and abs(d.mutual_information) < 1e-3 and d.dimensions == 4
    results = {}
    for free_bits in (0.0, 0.5):
        imitator, guide = _model()
        objective = CollapseAwareELBO(imitator, guide, schedule="linear", warmup=100, free_bits=free_bits)
        config = TrainConfig(
            steps=250, batch_size=32, eval_every=250, eval_particles=20, eval_answers=50, progress=False
        )
        report = train(imitator, questions, answers, guide, heldout, config, objective=objective)
        results[free_bits] = report.history[-1]
    # Plain ELBO training collapses this imitator (the typist's answers barely need z); free bits keep every
    # dimension in use and its information about the answer well above zero.
    assert results[0.0]["active_units"] <= 1 and results[0.0]["mutual_information"] < 0.1
    assert results[0.5]["active_units"] == 4 and results[0.5]["mutual_information"] > 0.5
    assert {"kl", "mutual_information", "active_units", "kl_weight"} <= set(results[0.5])
