"""Pareto k-hat recovers the tail index of known heavy-tailed weights."""

import math

import numpy as np

from retro.inference.psis import khat_threshold, pareto_khat


def test_khat_recovers_pareto_tail():
    # weights ~ Pareto with tail index 1/k: k-hat estimates k. The GPD shape estimate from M tail draws has
    # standard error about (1 + k) / sqrt(M); ArviZ uses M = 3 sqrt(S) draws.
    rng = np.random.default_rng(0)
    draws = 10_000
    for k in (0.3, 0.8):
        log_w = np.log(rng.pareto(1.0 / k, size=(4, draws)) + 1.0)
        khat = pareto_khat(log_w)
        tolerance = 4 * (1 + k) / math.sqrt(3 * math.sqrt(draws))
        assert np.all(np.abs(khat - k) < tolerance), (k, khat)


def test_light_tails_have_small_khat_and_zero_weights_are_allowed():
    rng = np.random.default_rng(1)
    log_w = rng.normal(size=(3, 2000)) * 0.3
    log_w[0, :10] = -np.inf
    khat = pareto_khat(log_w)
    assert np.all(khat < khat_threshold(2000))


def test_threshold_follows_vehtari_2024():
    assert math.isclose(khat_threshold(100), 0.5)
    assert khat_threshold(10**6) == 0.7


def test_inference_data_export_round_trips_the_weights():
    import torch

    from retro.humans import make_human
    from retro.inference import importance
    from retro.inference.psis import to_inference_data

    human = make_human("typist")
    questions, answers = human.draw(6, seed=0)
    records, info = importance(human, questions, answers, proposal="prior", num_particles=80)
    log_weights = info.log_weights
    idata = to_inference_data(log_weights, records)
    stored = torch.tensor(idata.sample_stats.log_weights.values[0])
    assert torch.equal(stored, log_weights.double())
    assert list(idata.constant_data.answer.values) == answers
    assert np.allclose(idata.constant_data.log_prob.values, [r.log_prob for r in records])


def test_vectorized_khat_equals_arviz_psislw():
    # The batch fit must give ArviZ's numbers (the reference) for light and heavy tails, zero weights, ties at
    # the tail cutoff (fitted one row at a time) and weights spanning more than exp(708) (cutoff raised).
    from retro.inference.psis import arviz_pareto_khat

    rng = np.random.default_rng(2)
    for draws in (25, 64, 1000):
        log_w = np.concatenate(
            [
                rng.normal(size=(6, draws)) * np.array([0.1, 1, 3, 10, 40, 600])[:, None],
                np.log(rng.pareto(1.0 / 0.8, size=(3, draws)) + 1.0),
                np.round(rng.normal(size=(2, draws))),  # ties
            ]
        )
        log_w[0, :5] = -np.inf
        ours, reference = pareto_khat(log_w), arviz_pareto_khat(log_w)
        assert np.array_equal(np.isnan(ours), np.isnan(reference))
        both = ~np.isnan(ours)
        assert np.allclose(ours[both], reference[both], rtol=0, atol=1e-6), (draws, ours, reference)


def test_khat_is_nan_where_it_cannot_be_fitted():
    log_w = np.zeros((3, 64))
    log_w[1, :] = -np.inf  # an impossible answer
    log_w[2, :3] = 1.0
    khat = pareto_khat(log_w)
    assert np.isnan(khat[:2]).all() and not np.isnan(khat[2])
    assert np.isnan(pareto_khat(np.random.default_rng(0).normal(size=(2, 24)))).all()  # < 25 draws


def test_unreliable_answers_are_counted_against_the_threshold_of_their_own_budget(capsys):
    """k-hat 0.65 is over the threshold for 500 particles (0.63) but not for 5,000 (0.70); an exact record has
    none. Both summaries (in memory and streamed) count the same, and the CLI warns in one line only then."""
    from retro.cli.common import warn_unreliable
    from retro.inference.results import AnswerEstimate, summarize
    from retro.inference.scoring import RunningSummary

    def record(khat, particles):
        return AnswerEstimate("q", "a", -1.0, 0.1, 100.0, khat, particles, "importance[guide]", "estimate")

    records = [record(0.65, 500), record(0.65, 5000), record(0.9, 5000), record(math.nan, 0)]
    running = RunningSummary()
    for r in records:
        running.add(r)
    assert summarize(records).unreliable == running.summary().unreliable == 2
    warn_unreliable("score", 2, 4)
    warn_unreliable("score", 0, 4)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "retro score: warning: 2 of 4 estimates have a Pareto k-hat"
    )
