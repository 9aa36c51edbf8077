"""Pareto k-hat diagnostics of importance weights (PSIS, Vehtari et al. 2024), and export to ArviZ.

:func:`pareto_khat` fits the generalized Pareto tail of every answer's weights at once (numpy, vectorized over
answers). It follows ArviZ's ``psislw`` step by step (same tail size, same empirical-Bayes fit of Zhang &
Stephens 2009 with the same weak prior), so the two agree to floating-point rounding; ArviZ stays the reference
(:func:`arviz_pareto_khat`, compared in the tests). This is the only module that calls ArviZ, so moving to ArviZ
1.x touches one place.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from retro.inference.results import AnswerEstimate, khat_threshold

__all__ = ["pareto_khat", "arviz_pareto_khat", "khat_threshold", "to_inference_data", "MIN_DRAWS"]

MIN_DRAWS = 25  # below this the Pareto tail has < 5 points (ArviZ would answer inf)
_FLOOR = 800.0  # log weights more than this below the largest count as zero weights
_CUTOFF_MIN = float(np.log(np.finfo(float).tiny))  # ArviZ's lowest tail cutoff (exp must not underflow)
_PRIOR_BS = 3.0  # the GPD fit's prior, as in ArviZ (Zhang & Stephens 2009; Vehtari et al. 2024)
_PRIOR_K = 10.0
_NEGLIGIBLE = 10 * np.finfo(float).eps


def _arviz():
    with warnings.catch_warnings():  # ArviZ 0.23 warns about its 1.x migration on import
        warnings.simplefilter("ignore")
        import arviz

    return arviz


def _fittable(log_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(out, rows, mask)``: a ``nan`` result array, the fittable rows (finite after flooring zero weights at
    ``top - 800``: a weight exp(-800) below the largest is as good as zero, and PSIS needs finite numbers), and
    which rows they are."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    out = np.full(log_weights.shape[:-1], np.nan)
    if log_weights.shape[-1] < MIN_DRAWS:  # too few draws for a tail fit
        return out, log_weights[..., :0].reshape(0, 0), np.zeros(out.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        top = log_weights.max(-1, keepdims=True)
        floored = np.maximum(log_weights, top - _FLOOR)
        mask = np.isfinite(floored).all(-1) & (np.ptp(floored, axis=-1) > 0)
    return out, floored[mask], mask


def pareto_khat(log_weights: np.ndarray) -> np.ndarray:
    """k-hat per row of ``log_weights[..., S]`` (``nan`` where it cannot be estimated), all rows at once.

    Equal to ArviZ's ``psislw(log_weights)[1]`` (``reff=1``) to rounding error.
    """
    out, rows, mask = _fittable(log_weights)
    if len(rows):
        out[mask] = _khat_rows(rows)
    return out


def _khat_rows(lw: np.ndarray) -> np.ndarray:
    """k-hat of each row of finite ``lw[R, S]``, as ArviZ's ``_psislw`` computes it."""
    num_draws = lw.shape[-1]
    tail_size = int(np.ceil(min(num_draws / 5.0, 3 * num_draws**0.5)))
    x = np.sort(lw - lw.max(-1, keepdims=True), axis=-1)
    raw_cutoff = x[:, num_draws - tail_size - 1]
    cutoff = np.maximum(raw_cutoff, _CUTOFF_MIN)
    # Usually the tail is the ``tail_size`` largest draws; a tie at the cutoff or a cutoff raised to
    # _CUTOFF_MIN shortens it (the draws strictly above the cutoff), and those rows are fitted one at a time.
    regular = (raw_cutoff >= _CUTOFF_MIN) & (x[:, num_draws - tail_size] > raw_cutoff)
    khat = np.empty(len(lw))
    if regular.any():
        tails = np.exp(x[regular, num_draws - tail_size :]) - np.exp(cutoff[regular, None])
        khat[regular] = _gpd_shape(tails)
    for i in np.flatnonzero(~regular):
        above = x[i][x[i] > cutoff[i]]
        khat[i] = np.inf if len(above) <= 4 else _gpd_shape((np.exp(above) - np.exp(cutoff[i]))[None])[0]
    return khat


def _gpd_shape(tails: np.ndarray) -> np.ndarray:
    """Shape k of the generalized Pareto distribution fitted to each row of sorted ``tails[R, n]``.

    ArviZ's ``_gpdfit`` for many rows at once: the posterior mean of b over a grid of ``30 + sqrt(n)`` values
    (weights ``1 / sum_j exp(L_j - L_i)``, i.e. a softmax of the profile log likelihoods ``L``), then k with a weak
    prior toward 0.5. In torch, whose vectorized ``log1p`` is several times faster than numpy's on the
    ``R x grid x n`` array that dominates the cost.
    """
    n = tails.shape[-1]
    grid_size = 30 + int(n**0.5)
    x = torch.from_numpy(tails)
    b = 1 - torch.sqrt(grid_size / (torch.arange(1, grid_size + 1, dtype=torch.float64) - 0.5))
    b = b / (_PRIOR_BS * x[:, int(n / 4 + 0.5) - 1, None]) + 1 / x[:, -1, None]  # [R, m]
    k = torch.log1p(-b[:, :, None] * x[:, None, :]).mean(-1)  # [R, m]
    weights = torch.softmax(n * (torch.log(-(b / k)) - k - 1), dim=-1)
    weights = torch.where(weights >= _NEGLIGIBLE, weights, 0.0)  # also drops nan, as ArviZ does
    total = weights.sum(-1)
    # When every weight is dropped ArviZ's posterior mean of b is an empty sum, 0.
    b_post = torch.where(total > 0, (b * weights).sum(-1) / total, 0.0)
    k_post = torch.log1p(-b_post[:, None] * x).mean(-1)
    return ((n * k_post + _PRIOR_K * 0.5) / (n + _PRIOR_K)).numpy()


def arviz_pareto_khat(log_weights: np.ndarray) -> np.ndarray:
    """:func:`pareto_khat` computed by ArviZ's ``psislw``, one answer at a time (the reference; slow)."""
    out, rows, mask = _fittable(log_weights)
    if len(rows):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, khat = _arviz().psislw(rows)
        out[mask] = np.asarray(khat, dtype=np.float64)
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
