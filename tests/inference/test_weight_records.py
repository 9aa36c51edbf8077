"""Standard errors, ESS and k-hat of per-answer records, pinned on weight vectors with known answers."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from retro.inference.psis import pareto_khat
from retro.inference.results import AnswerEstimate, summarize
from retro.inference.weight_records import (
    records_from_log_weights,
    small_sample_factor,
    spread_stderr,
    unseen_mass_floor,
)


def records(columns, kind="estimate"):
    """Records for log weights given per answer (each a list of K numbers)."""
    log_w = torch.tensor(columns, dtype=torch.float64).T  # [K, B]
    n = log_w.shape[1]
    return records_from_log_weights(
        log_w, [f"q{i}" for i in range(n)], [f"a{i}" for i in range(n)], "m", kind
    )


def test_estimate_stderr_and_ess_on_known_weights():
    t_factor = stats.t.ppf(0.975, 1) / stats.norm.ppf(0.975)  # K = 2
    (r,) = records([[0.0, math.log(3.0)]])  # weights 1, 3: mean 2, sd (ddof 1) sqrt(2)
    assert r.log_prob == pytest.approx(math.log(2.0), abs=1e-12)
    assert r.stderr == pytest.approx(math.sqrt(2.0) / math.sqrt(2.0) / 2.0 * t_factor, rel=1e-9)
    assert r.ess == pytest.approx(16.0 / 10.0, rel=1e-12)  # (1 + 3)^2 / (1 + 9)
    assert (r.num_particles, r.kind, r.method) == (2, "estimate", "m")
    assert math.isnan(r.khat)  # fewer than 25 draws: no tail fit


def test_spread_stderr_undoes_the_small_sample_widening():
    # What predicts another budget's standard error is the draws' spread over sqrt(K), not the widened error bar.
    weights = [1.0, 2.0, 3.0, 10.0]
    (estimate,) = records([np.log(weights).tolist()])
    (bound,) = records([np.log(weights).tolist()], kind="lower_bound")
    assert spread_stderr(estimate) == pytest.approx(
        np.std(weights, ddof=1) / 2.0 / np.mean(weights), rel=1e-12
    )
    assert estimate.stderr == pytest.approx(spread_stderr(estimate) * small_sample_factor(estimate.ess))
    assert spread_stderr(bound) == pytest.approx(np.std(np.log(weights), ddof=1) / 2.0, rel=1e-12)
    (one,) = records([[0.5]])  # one draw: no spread
    assert math.isnan(spread_stderr(one))


def test_ess_of_equal_one_hot_and_uneven_weights():
    equal, one_hot, uneven = records(
        [[0.0] * 4, [0.0, -math.inf, -math.inf, -math.inf], [math.log(2.0), 0.0, 0.0, -math.inf]]
    )
    assert equal.ess == pytest.approx(4.0) and one_hot.ess == pytest.approx(1.0)
    assert uneven.ess == pytest.approx(16.0 / 6.0)  # (2 + 1 + 1)^2 / (4 + 1 + 1)
    assert equal.log_prob == 0.0 and one_hot.log_prob == pytest.approx(math.log(0.25))
    # Four equal weights do not show that every weight is equal: the error bar is the unseen-mass floor.
    assert equal.stderr == pytest.approx(math.log(20.0) / (1.959963984540054 * 4))
    assert equal.stderr == unseen_mass_floor(4)


def test_lower_bound_is_mean_log_weight_with_its_t_stderr():
    (r,) = records([[-1.0, -2.0, -3.0, -6.0]], kind="lower_bound")
    assert r.log_prob == pytest.approx(-3.0)
    sd = np.std([-1.0, -2.0, -3.0, -6.0], ddof=1)
    assert r.stderr == pytest.approx(sd / 2.0 * small_sample_factor(4))
    assert small_sample_factor(4) == pytest.approx(stats.t.ppf(0.975, 3) / 1.959963984540054)


def test_shifting_every_weight_moves_only_the_estimate():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 200)) * 2.0
    plain, shifted = records(base.tolist()), records((base + 1000.0).tolist())  # exp(1000) overflows float64
    for a, b in zip(plain, shifted):
        assert b.log_prob - a.log_prob == pytest.approx(1000.0, abs=1e-9)
        assert b.stderr == pytest.approx(a.stderr, rel=1e-9) and b.ess == pytest.approx(a.ess, rel=1e-9)
        assert b.khat == pytest.approx(a.khat, abs=1e-9)


def test_records_carry_the_khat_of_their_weights():
    rng = np.random.default_rng(1)
    log_w = np.log(rng.pareto(1.0 / 0.7, size=(4, 400)) + 1.0)
    got = [r.khat for r in records(log_w.tolist())]
    assert np.array_equal(got, pareto_khat(log_w))  # equal to ArviZ's: tests/inference/test_psis.py


def test_impossible_answer_and_single_particle():
    impossible, single = records([[-math.inf] * 3]), records([[0.5]])
    assert impossible[0].log_prob == -math.inf and math.isnan(impossible[0].stderr) and impossible[0].ess == 0
    assert single[0].log_prob == 0.5 and math.isnan(single[0].stderr)


def test_stderr_is_calibrated_for_lognormal_weights():
    # log w ~ N(0, s^2): E[w] = exp(s^2 / 2) exactly. The 95% intervals of 2000 answers at K = 100 must cover
    # log E[w] 95% of the time, within 4 binomial standard errors.
    rng = np.random.default_rng(2)
    s, answers = 0.5, 2000
    result = records((rng.normal(size=(answers, 100)) * s).tolist())
    z = np.array([(r.log_prob - s**2 / 2) / r.stderr for r in result])
    coverage = np.mean(np.abs(z) <= 1.96)
    assert abs(coverage - 0.95) <= 4 * math.sqrt(0.95 * 0.05 / answers), coverage
    assert abs(np.mean(z**2) - 1) <= 4 * np.std(z**2, ddof=1) / math.sqrt(answers)


def test_summarize_on_known_records():
    def record(value, stderr, khat):
        return AnswerEstimate("q", "a", value, stderr, 10.0, khat, 10, "m", "estimate")

    summary = summarize([record(-1.0, 0.3, 0.2), record(-2.0, 0.4, math.nan), record(-3.0, 0.0, 0.4)])
    assert summary.log_prob_mean == pytest.approx(-2.0)
    mc = math.sqrt(0.3**2 + 0.4**2) / 3  # each answer's Monte Carlo error, averaged
    spread = 1.0 / 3  # variance across answers (1) over n
    assert summary.mc_stderr == pytest.approx(mc)
    assert summary.stderr == pytest.approx(math.sqrt(spread + mc**2))
    assert summary.khat_mean == pytest.approx(0.3)  # nan k-hat left out
    assert (summary.num_answers, summary.method) == (3, "m")
