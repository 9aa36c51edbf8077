"""Pareto k-hat diagnostics of importance weights (PSIS, Vehtari et al. 2024), and export to ArviZ.

This is the only module that calls ArviZ, so moving to ArviZ 1.x touches one place.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from retro.inference.results import AnswerEstimate

__all__ = ["pareto_khat", "khat_threshold", "to_inference_data", "MIN_DRAWS"]

MIN_DRAWS = 25  # below this the Pareto tail has < 5 points (ArviZ would answer inf)


def _arviz():
    with warnings.catch_warnings():  # ArviZ 0.23 warns about its 1.x migration on import
        warnings.simplefilter("ignore")
        import arviz

    return arviz


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
        _, khat = _arviz().psislw(log_weights[finite])
    out[finite] = np.asarray(khat, dtype=np.float64)
    return out


def to_inference_data(log_weights: torch.Tensor, records: Sequence[AnswerEstimate]):
    """ArviZ ``InferenceData`` of per-answer importance log weights (particles as draws of one chain).

    Group ``sample_stats`` holds ``log_weights[chain=1, draw=K, answer=B]``; ``constant_data`` holds each answer's
    question, answer, estimate, standard error, ESS and k-hat. ArviZ's tools work on it directly:

        >>> import arviz as az  # doctest: +SKIP
        >>> lw = idata.sample_stats.log_weights.stack(__sample__=("chain", "draw"))  # doctest: +SKIP
        >>> smoothed, khat = az.psislw(lw)  # doctest: +SKIP
        >>> az.plot_khat(khat)  # doctest: +SKIP
    """
    lw = log_weights.detach().to(torch.float64).cpu().numpy()
    if lw.shape[1] != len(records):
        raise ValueError(f"{lw.shape[1]} columns of log weights for {len(records)} records")
    fields = ("question", "answer", "log_prob", "stderr", "ess", "khat")
    constant = {f: np.array([getattr(r, f) for r in records]) for f in fields}
    return _arviz().from_dict(
        sample_stats={"log_weights": lw[None]},
        constant_data=constant,
        coords={"answer_index": np.arange(len(records))},
        dims={name: ["answer_index"] for name in ("log_weights", *fields)},
        attrs={"method": records[0].method if records else "", "num_particles": lw.shape[0]},
    )
