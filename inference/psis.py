"""Pareto k-hat diagnostics of importance weights (PSIS, Vehtari et al. 2024).

This is the only module that calls ArviZ, so moving to ArviZ 1.x touches one place.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = ["pareto_khat", "khat_threshold", "MIN_DRAWS"]

MIN_DRAWS = 25  # below this the Pareto tail has < 5 points (ArviZ would answer inf)


def khat_threshold(num_draws: int) -> float:
    """k-hat below which an estimate from ``num_draws`` weights is reliable: min(1 - 1/log10(S), 0.7)."""
    if num_draws <= 10:
        return 0.0
    return min(1.0 - 1.0 / math.log10(num_draws), 0.7)


def pareto_khat(log_weights: np.ndarray) -> np.ndarray:
    """k-hat per row of ``log_weights[..., S]`` (``nan`` where it cannot be estimated)."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    out = np.full(log_weights.shape[:-1], np.nan)
    if log_weights.shape[-1] < MIN_DRAWS:  # too few draws for a tail fit
        return out
    # Zero weights (log w = -inf: impossible particles) are legitimate; PSIS needs finite numbers, and a weight
    # exp(-800) below the largest is as good as zero.
    top = log_weights.max(-1, keepdims=True)
    log_weights = np.maximum(log_weights, top - 800.0)
    finite = np.isfinite(log_weights).all(-1) & (np.ptp(log_weights, axis=-1) > 0)
    if not finite.any():
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az

        _, khat = az.psislw(log_weights[finite])
    out[finite] = np.asarray(khat, dtype=np.float64)
    return out
