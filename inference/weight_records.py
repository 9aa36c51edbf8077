"""Per-answer records from a matrix of log importance weights (shared by the sampling-based estimators)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from retro.inference.psis import pareto_khat
from retro.inference.results import AnswerEstimate, Estimate, EstimateInfo, Kind

__all__ = [
    "estimate_from_log_weights",
    "records_from_log_weights",
    "small_sample_factor",
    "unseen_mass_floor",
    "spread_stderr",
]

_Z95 = 1.959963984540054  # the standard Normal's 97.5% quantile


def small_sample_factor(num_draws):
    """``t_{K-1}(0.975) / z(0.975)``: how much wider the Student-t 95% interval with ``K - 1`` degrees of freedom
    is than the Normal one (1.15 at K = 10, 1.01 at K = 100; ``K`` may be fractional, or an array); ``nan`` below
    two draws."""
    from scipy import stats  # here, not at import: scipy.stats would add about a second to every start-up

    num_draws = np.asarray(num_draws, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        factor = np.where(num_draws >= 2, stats.t.ppf(0.975, np.maximum(num_draws, 2) - 1) / _Z95, np.nan)
    return float(factor) if factor.ndim == 0 else factor


def unseen_mass_floor(num_draws: int) -> float:
    """Standard error of a log-mean-weight estimate from ``K`` equal weights: ``log(20) / (1.96 K)``.

    K draws miss a share of the proposal up to ``m = 1 - 0.05^(1/K)`` with probability 5% (the "rule of three").
    Were the weights there zero, the estimate would be ``-log(1 - m) = log(20) / K`` nats too high, so the zero
    spread of K equal weights (a discrete latent whose K draws all took one value) does not support a zero error
    bar; this one covers that case (0.15 nats at K = 10, 0.0015 at K = 1000).
    """
    return math.log(20.0) / (_Z95 * num_draws)


def _widening(num_draws, ess, kind: str):
    """The factor :func:`records_from_log_weights` widens a standard error by (see there)."""
    return small_sample_factor(num_draws if kind == "lower_bound" else np.clip(ess, 2.0, num_draws))


def spread_stderr(record: AnswerEstimate) -> float:
    """A record's standard error before the small-sample widening: the spread of its draws over ``sqrt(K)``.

    This, not the widened error bar, is what predicts the standard error of a run with another budget ``K'``
    (``spread_stderr * sqrt(K / K')``): the widening stands for the uncertainty of the spread itself at small K
    (a factor 1.4 at an ESS of 5) and would inflate a prediction from a small pilot by its square. ``nan`` or
    ``inf`` where the record has no finite spread."""
    if not (record.num_particles >= 2 and math.isfinite(record.stderr)):
        return record.stderr
    return record.stderr / float(_widening(record.num_particles, record.ess, record.kind))


def records_from_log_weights(
    log_w: torch.Tensor,
    questions: Sequence[str],
    answers: Sequence[str],
    method: str,
    kind: Kind,
) -> list[AnswerEstimate]:
    """Turn ``log_w[K, B]`` into one record per answer.

    ``kind="estimate"``: log of the mean weight, delta-method standard error sd(w) / (sqrt(K) mean(w)).
    ``kind="lower_bound"``: mean log weight (the ELBO), standard error sd(log w) / sqrt(K).
    Both standard errors are scaled by :func:`small_sample_factor` so that estimate +- 1.96 stderr is a
    Student-t interval (the standard deviation is itself estimated from the draws): with K - 1 degrees of freedom
    for a lower bound, and ESS - 1 for an estimate, whose spread rests on the few largest weights when they are
    uneven (one dominant weight among K = 10: ESS near 1, factor up to 6.5).
    An estimate from K equal weights gets :func:`unseen_mass_floor` instead of 0 (its draws do not show that the
    weights are all equal).
    Both carry the ESS (``(sum w)^2 / sum w^2``) and Pareto k-hat of the weights.
    """
    with np.errstate(all="ignore"):  # -inf weights (impossible particles) are legitimate
        return _records(log_w.detach().to(torch.float64).cpu().numpy().T, questions, answers, method, kind)


def estimate_from_log_weights(
    log_w: torch.Tensor,
    questions: Sequence[str],
    answers: Sequence[str],
    method: str,
    kind: Kind,
) -> Estimate:
    """A sampling estimator's result from its ``log_w[K, B]``: :func:`records_from_log_weights`, and an info
    record of ``K`` particles that keeps the weights (float64, on the CPU) as ``info.log_weights``."""
    log_w = log_w.detach().to(torch.float64).cpu()
    records = records_from_log_weights(log_w, questions, answers, method, kind)
    return Estimate(records, EstimateInfo(method, log_w.shape[0], log_weights=log_w))


def _records(lw: np.ndarray, questions, answers, method: str, kind: Kind) -> list[AnswerEstimate]:
    """All answers at once: ``lw`` is ``[B, K]``."""
    num_particles = lw.shape[1]
    top = lw.max(axis=1, keepdims=True)
    possible = np.isfinite(top[:, 0])
    w = np.exp(lw - np.where(possible[:, None], top, 0.0))  # an answer with every weight 0 stays all-zero
    mean_w = w.mean(axis=1)
    ess = np.where(possible, w.sum(axis=1) ** 2 / (w**2).sum(axis=1), 0.0)
    ddof = 1 if num_particles > 1 else 0  # one particle: no spread to estimate (nan below)
    if kind == "lower_bound":
        estimate = lw.mean(axis=1)
        stderr = lw.std(axis=1, ddof=ddof) / math.sqrt(num_particles)
    else:
        estimate = top[:, 0] + np.log(mean_w)
        stderr = w.std(axis=1, ddof=ddof) / math.sqrt(num_particles) / mean_w
    if num_particles == 1:
        stderr = np.full_like(stderr, np.nan)
    else:
        # An estimate's spread of uneven weights rests on fewer draws than K: Kish's ESS counts them.
        stderr = stderr * _widening(num_particles, ess, kind)
        if kind == "estimate":  # K equal weights: the draws do not show that the weights are all equal
            stderr = np.where(stderr > 0, stderr, unseen_mass_floor(num_particles))
    estimate = np.where(possible, estimate, -np.inf)
    stderr = np.where(possible, stderr, np.nan)
    khat = pareto_khat(lw)
    return [
        AnswerEstimate(q, a, e, s, n, k, num_particles, method, kind)
        for q, a, e, s, n, k in zip(
            questions, answers, estimate.tolist(), stderr.tolist(), ess.tolist(), khat.tolist()
        )
    ]
