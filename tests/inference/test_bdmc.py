"""BDMC: forward and reverse AIS sandwich the exact log p in expectation (the typist's exact value by quadrature)."""

import math
import random

import numpy as np
import pytest

from retro.errors import RetroError
from retro.humans import make_human
from retro.inference.bdmc import bdmc


@pytest.mark.parametrize("num_steps", [3, 48])
def test_bounds_sandwich_exact_on_average(num_steps, float64):
    human = make_human("typist").double()
    rng = random.Random(0)
    questions = [human.draw_question(rng) for _ in range(100)]
    results = bdmc(human, questions, num_steps=num_steps, num_chains=16, seed=0)
    exact = np.array([r.exact for r in results])
    lower = np.array([r.log_prob_lower for r in results]) - exact
    upper = np.array([r.log_prob_upper for r in results]) - exact
    # Each bound holds in expectation (Jensen): its mean deviation from exact is on the right side, up to
    # 4 standard errors of a mean over 100 answers.
    assert lower.mean() <= 4 * lower.std(ddof=1) / math.sqrt(len(lower))
    assert upper.mean() >= -4 * upper.std(ddof=1) / math.sqrt(len(upper))
    gap = np.mean([r.gap for r in results])
    # A short schedule leaves a visible gap; the default budget closes it to well under 0.1 nats.
    assert gap > 0.05 if num_steps == 3 else gap <= 0.1
    assert all(r.answer and r.num_steps == num_steps for r in results)


def test_bdmc_errors():
    with pytest.raises(RetroError, match="needs continuous latents"):
        bdmc(make_human("arithmetic"), ["1+1"])
    with pytest.raises(RetroError, match="needs a trained guide"):
        bdmc(make_human("typist"), ["word"], proposal="guide")
    with pytest.raises(RetroError, match="num_chains must be a positive integer"):
        bdmc(make_human("typist"), ["word"], num_chains=0)
