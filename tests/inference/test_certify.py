"""Certified lower bounds: the Markov bound, its combination over groups, their failure rate and tightness."""

import math

import pytest
import torch

from retro.errors import RetroError
from retro.inference.certify import certified_log_bounds, certified_records, group_counts


def test_one_group_is_the_markov_bound():
    log_w = torch.randn(50, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    bounds = certified_log_bounds(log_w, 0.05, max_groups=1)
    expected = log_w.logsumexp(0) - math.log(50) - math.log(20)
    assert torch.allclose(bounds, expected, atol=1e-12)


def test_combined_bound_is_never_far_below_the_markov_bound_and_tighter_for_steady_weights():
    log_w = 0.3 * torch.randn(1000, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    plain = log_w.logsumexp(0) - math.log(1000) - math.log(1 / 0.05)
    combined = certified_log_bounds(log_w, 0.05)
    assert torch.all(combined >= plain - math.log(1 / 0.8) - 1e-12)  # M = 1 keeps 80% of delta
    assert torch.all(combined > plain + 2.0)  # 64 groups of steady weights: a fraction of a nat of slack
    assert group_counts(1000) == [1, 4, 8, 16, 32, 64] and group_counts(3) == [1]


@pytest.mark.parametrize("num_particles", [1, 64])
def test_failure_rate_is_at_most_delta_where_markov_is_nearly_tight(num_particles):
    # Weights c with probability pi = 0.04, else 0: p = c pi, and a single weight's Markov bound at delta = 0.05
    # fails exactly when the weight is c (probability 0.04). At most delta + 4 binomial standard errors may fail.
    delta, pi, answers = 0.05, 0.04, 4000
    generator = torch.Generator().manual_seed(2)
    hits = torch.rand(num_particles, answers, generator=generator, dtype=torch.float64) < pi
    log_w = torch.where(hits, 0.0, -math.inf).to(torch.float64)
    failed = (certified_log_bounds(log_w, delta) > math.log(pi)).double().mean().item()
    assert failed <= delta + 4 * math.sqrt(delta * (1 - delta) / answers)
    if num_particles == 1:
        assert failed == pytest.approx(pi, abs=4 * math.sqrt(pi * (1 - pi) / answers))  # the bound is tight


def test_records_and_bad_delta():
    log_w = torch.zeros(30, 2, dtype=torch.float64)
    records = certified_records(log_w, ["q1", "q2"], ["a1", "a2"], "importance[prior]", 0.05)
    assert [r.kind for r in records] == ["certified"] * 2
    assert records[0].method == "importance[prior]+certify(0.05)" and records[0].num_particles == 30
    for delta in (0.0, 1.0, -0.1, float("nan"), "0.05"):
        with pytest.raises(RetroError, match="delta"):
            certified_log_bounds(log_w, delta)
