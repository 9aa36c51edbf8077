"""Experiment 1: the steganographic imitator is invisible to a discriminator, visible to retrodiction.

Tolerances come from binomial standard errors (accuracies) and the per-answer standard error of the log p drop.
"""

from __future__ import annotations

import math

import pytest

from retro.errors import RetroError
from retro.experiments.steganography import (
    CANDIDATES,
    HonestHuman,
    StegoImitator,
    expected_drop,
    run_steganography,
)
from retro.inference import exact


@pytest.fixture(scope="module")
def rows():
    return run_steganography(
        bits=(0, 2, 4), smoothing=0.02, num_train=400, num_test=300, disc_steps=60, seed=1
    )


def test_discriminator_cannot_tell_but_the_key_decodes(rows):
    for r in rows:
        tested = 2 * 300
        assert abs(r.disc_accuracy - 0.5) < 4 * math.sqrt(0.25 / tested), r
        reliability = 1 - r.smoothing + r.smoothing / 2**r.bits
        assert (
            abs(r.decode_accuracy - reliability)
            < 4 * math.sqrt(reliability * (1 - reliability) / 700) + 1e-12
        )


def test_retrodiction_sees_the_hidden_bits(rows):
    for r in rows:
        assert r.honest_log_prob_mean == pytest.approx(-math.log(CANDIDATES))
        assert abs(r.log_prob_drop_nats - r.expected_drop_nats) <= 4 * r.log_prob_drop_stderr + 1e-9, r
        if r.bits:
            assert r.log_prob_drop_nats >= r.bits * math.log(
                2
            )  # reliable decoding costs at least about b ln 2
            share_outside = 1 - 2.0**-r.bits  # without smoothing these human answers have probability 0
            assert abs(r.unsmoothed_impossible_fraction - share_outside) < 4 * math.sqrt(
                share_outside * (1 - share_outside) / 300
            )


def test_stego_law_without_the_key_is_the_humans(float64):
    """Averaged over messages, the imitator's law is exactly uniform over the question's words."""
    imitator = StegoImitator(2, b"key", smoothing=0.0)
    words = [w for w, _ in HonestHuman().candidates("q000001")]
    total = {w: 0.0 for w in words}
    for m in range(4):
        imitator.message = lambda question, m=m: m
        imitator._cache.clear()
        for r in exact(imitator, ["q000001"] * len(words), words).records:
            total[r.answer] += math.exp(r.log_prob) / 4
    assert all(v == pytest.approx(1 / CANDIDATES) for v in total.values())
    assert expected_drop(0, 0.5) == 0.0 and expected_drop(3, 0.0) == math.inf


def test_bad_settings():
    with pytest.raises(RetroError, match="bits must be in 0..4"):
        run_steganography(bits=(0, 5))
    with pytest.raises(RetroError, match="smoothing must be in"):
        StegoImitator(1, b"k", smoothing=1.5)


def test_a_fixed_seed_reproduces_the_numbers():
    settings = dict(bits=(1,), num_train=60, num_test=40, disc_steps=5, seed=7)
    assert run_steganography(**settings) == run_steganography(**settings)
