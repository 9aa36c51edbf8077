"""BDMC: forward and reverse AIS sandwich the exact log p (the typist's exact value by quadrature)."""

import math
import random

import numpy as np
import pytest

from retro.errors import RetroError
from retro.humans import make_human
from retro.inference.bdmc import DEFAULT_BDMC_CHAINS, DEFAULT_CONFIDENCE, bdmc


def _typist_sandwiches(n, seed, **settings):
    human = make_human("typist").double()
    rng = random.Random(seed)
    return bdmc(human, [human.draw_question(rng) for _ in range(n)], seed=seed, **settings)


@pytest.mark.slow
def test_confidence_bounds_cover_exact_at_the_default_budget(float64):
    results = _typist_sandwiches(200, seed=1)
    exact = np.array([r.exact for r in results])
    inside = np.mean([r.log_prob_lower <= t <= r.log_prob_upper for r, t in zip(results, exact)])
    # Both bounds hold together with probability >= 0.95 per answer: the covered fraction of 200 answers may fall
    # below 0.95 only by binomial noise (3 standard errors).
    n = len(results)
    assert inside >= DEFAULT_CONFIDENCE - 3 * math.sqrt(DEFAULT_CONFIDENCE * (1 - DEFAULT_CONFIDENCE) / n)
    assert np.mean([r.gap for r in results]) <= 0.1
    # The AIS estimate lies between the bare means in expectation, so it is inside nearly every sandwich.
    assert np.mean([r.log_prob_lower <= r.ais_estimate <= r.log_prob_upper for r in results]) >= 0.95
    assert all(
        r.answer and r.num_chains == DEFAULT_BDMC_CHAINS and r.confidence == DEFAULT_CONFIDENCE
        for r in results
    )


@pytest.mark.slow
@pytest.mark.parametrize("num_steps", [3, 48])
def test_bare_means_bound_exact_on_average(num_steps, float64):
    results = _typist_sandwiches(100, seed=0, num_steps=num_steps, num_chains=16, confidence=0.0)
    exact = np.array([r.exact for r in results])
    lower = np.array([r.log_prob_lower for r in results]) - exact
    upper = np.array([r.log_prob_upper for r in results]) - exact
    # Each bare mean is a bound in expectation (Jensen): its mean deviation from exact is on the right side, up to
    # 4 standard errors of a mean over 100 answers.
    assert lower.mean() <= 4 * lower.std(ddof=1) / math.sqrt(len(lower))
    assert upper.mean() >= -4 * upper.std(ddof=1) / math.sqrt(len(upper))
    gap = np.mean([r.gap for r in results])
    # A short schedule leaves a wide gap (about 1 nat); the default schedule closes it below 0.1 nats.
    assert gap > 0.5 if num_steps == 3 else gap <= 0.1


def test_bdmc_errors():
    with pytest.raises(RetroError, match="needs continuous latents"):
        bdmc(make_human("arithmetic"), ["1+1"])
    with pytest.raises(RetroError, match="needs a trained guide"):
        bdmc(make_human("typist"), ["word"], proposal="guide")
    with pytest.raises(RetroError, match="num_chains must be a positive integer"):
        bdmc(make_human("typist"), ["word"], num_chains=0)
    with pytest.raises(RetroError, match="confidence must be in"):
        bdmc(make_human("typist"), ["word"], confidence=1.0)
