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
