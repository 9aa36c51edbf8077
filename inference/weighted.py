"""Per-answer records from a matrix of log importance weights (shared by the sampling-based estimators)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from retro.inference.psis import pareto_khat
from retro.inference.results import AnswerEstimate, Kind

__all__ = ["records_from_log_weights"]


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
    Both carry the ESS and Pareto k-hat of the weights.
    """
    with np.errstate(all="ignore"):  # -inf weights (impossible particles) are legitimate
        return _records(log_w.detach().to(torch.float64).cpu().numpy().T, questions, answers, method, kind)


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
    estimate = np.where(possible, estimate, -np.inf)
    stderr = np.where(possible, stderr, np.nan)
    khat = pareto_khat(lw)
    return [
        AnswerEstimate(q, a, e, s, n, k, num_particles, method, kind)
        for q, a, e, s, n, k in zip(
            questions, answers, estimate.tolist(), stderr.tolist(), ess.tolist(), khat.tolist()
        )
    ]
