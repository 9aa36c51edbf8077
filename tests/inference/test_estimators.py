"""Estimators against exact values on the synthetic humans (float64; tolerances from the estimators' own errors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retro.humans import make_human
from retro.inference import AmortizedGuide, elbo, exact, importance
from retro.inference.exact import QUADRATURE_NODES, exact_log_prob
from retro.inference.sites import latent_sites
from retro.inference.train import TrainConfig, train

HUMANS_WITH_LATENTS = ["arithmetic", "numbers", "typist"]


def _arrays(records):
    return np.array([r.log_prob for r in records]), np.array([r.stderr for r in records])


@pytest.mark.parametrize("name", HUMANS_WITH_LATENTS)
def test_prior_importance_agrees_with_exact(name, float64):
    """Acceptance: K=2000 prior IS within 4 SE of exact for >= 95% of 200 answers; mean |error| <= 0.05."""
    human = make_human(name).double()
    questions, answers = human.draw(200, seed=1)
    truth, _ = _arrays(exact(human, questions, answers).records)
    estimate, stderr = _arrays(
        importance(human, questions, answers, proposal="prior", num_particles=2000).records
    )
    assert np.all(np.isfinite(truth))
    assert np.mean(np.abs(estimate - truth) <= 4 * stderr + 1e-12) >= 0.95
    assert np.mean(np.abs(estimate - truth)) <= 0.05


@pytest.fixture(scope="module")
def trained_guides():
    """A briefly trained amortized guide per human (trained in float32, then compared in float64)."""
    guides = {}
    for name in HUMANS_WITH_LATENTS:
        torch.manual_seed(0)
        human = make_human(name)
        questions, answers = human.draw(400, seed=2)
        guide = AmortizedGuide(human, hidden_dim=32, example=(questions[:1], answers[:1]))
        train(
            human,
            questions,
            answers,
            guide=guide,
            config=TrainConfig(steps=100, batch_size=32, learning_rate=1e-2, eval_every=1000, progress=False),
        )
        guides[name] = (human.double(), guide.double())
    return guides


@pytest.mark.parametrize("name", HUMANS_WITH_LATENTS)
def test_elbo_is_below_exact(name, trained_guides, float64):
    """Acceptance: elbo <= exact + 4 SE for every answer (a -inf ELBO is a valid bound)."""
    human, guide = trained_guides[name]
    questions, answers = human.draw(200, seed=1)
    truth, _ = _arrays(exact(human, questions, answers).records)
    bound, stderr = _arrays(elbo(human, questions, answers, guide=guide, num_particles=100).records)
    finite = np.isfinite(bound)
    assert np.all(bound[finite] <= truth[finite] + 4 * stderr[finite])
    assert np.all(bound[~finite] == -np.inf)
    assert finite.mean() > 0.5  # the trained guide proposes possible latents for most answers


@pytest.mark.parametrize(
    ("name", "proposal"), [("typist", "guide")] + [(n, "mixture") for n in HUMANS_WITH_LATENTS]
)
def test_guided_importance_agrees_with_exact(name, proposal, trained_guides, float64):
    """A Normal guide fits the typist's continuous posterior; a briefly trained discrete guide can be confidently
    wrong (weights p/q of ~1e10 on the style it rarely proposes), which the defensive mixture guards against."""
    human, guide = trained_guides[name]
    questions, answers = human.draw(100, seed=3)
    truth, _ = _arrays(exact(human, questions, answers).records)
    records = importance(
        human, questions, answers, guide=guide, proposal=proposal, num_particles=1000
    ).records
    estimate, stderr = _arrays(records)
    assert np.all([r.method == f"importance[{proposal}]" and r.kind == "estimate" for r in records])
    assert np.mean(np.abs(estimate - truth)) <= 0.05
    assert np.mean(np.abs(estimate - truth) <= 4 * stderr + 1e-12) >= 0.95


def test_quadrature_has_converged(float64):
    """Doubling the nodes changes the quadrature by < 1e-8: 'exact' is exact to well below any MC error."""
    human = make_human("typist").double()
    questions, answers = human.draw(50, seed=4)
    q, a = human.encode_questions(questions), human.encode_answers(answers)
    sites = latent_sites(human, questions[:1], answers[:1])
    coarse = exact_log_prob(human, q, a, sites, nodes=QUADRATURE_NODES)
    fine = exact_log_prob(human, q, a, sites, nodes=2 * QUADRATURE_NODES - 1)
    assert torch.max(torch.abs(coarse - fine)) < 1e-8


def test_enumeration_matches_manual_sum(float64):
    """Exact enumeration equals logsumexp over styles of log p(style) + log p(answer | style)."""
    human = make_human("arithmetic").double()
    questions, answers = human.draw(30, seed=5)
    q, a = human.encode_questions(questions), human.encode_answers(answers)
    intended = human._intended_tokens(q)
    terms = []
    for style, (prob, rate) in enumerate(zip(human.style_probs, human.typo_rates)):
        fn = human.answer_distribution(intended[:, style], torch.tensor(rate))
        terms.append(np.log(prob) + fn.log_prob(a.tokens))
    manual = torch.stack(terms).logsumexp(0)
    assert torch.allclose(
        torch.tensor([r.log_prob for r in exact(human, questions, answers).records]), manual
    )


def test_memory_bound_does_not_change_results(float64):
    """Chunking is invisible: exact is identical and IS agrees within its error for any max_rows."""
    human = make_human("typist").double()
    questions, answers = human.draw(20, seed=6)
    big = [r.log_prob for r in exact(human, questions, answers, max_rows=100_000).records]
    small = [r.log_prob for r in exact(human, questions, answers, max_rows=3000).records]
    assert np.allclose(big, small, rtol=0, atol=1e-12)
    chunked, stderr = _arrays(
        importance(human, questions, answers, proposal="prior", num_particles=500, max_rows=64).records
    )
    assert np.mean(np.abs(chunked - np.array(big)) <= 4 * stderr) >= 0.9


def test_program_without_latents_is_scored_exactly():
    from retro.models import Seq2Seq

    model = Seq2Seq(max_length=8, hidden_dim=16)
    records = importance(model, ["q"], ["ab"], proposal="prior", num_particles=100).records
    assert records[0].kind == "exact" and records[0].stderr == 0.0


def test_guide_proposal_without_guide_is_a_clear_error():
    from retro.errors import RetroError

    human = make_human("typist")
    with pytest.raises(RetroError, match="needs a trained guide"):
        importance(human, ["hello"], ["helo"], proposal="guide")
