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
    num_particles = lw.shape[1]
    khat = pareto_khat(lw)
    records = []
    for b in range(lw.shape[0]):  # cheap per-answer arithmetic on a [K] row
        row = lw[b]
        top = row.max()
        if not np.isfinite(top):
            estimate, stderr, ess = float(top), float("nan"), 0.0
        else:
            w = np.exp(row - top)
            mean_w = w.mean()
            ess = float(w.sum() ** 2 / (w**2).sum())
            if kind == "lower_bound":
                estimate = float(row.mean())
                stderr = (
                    float(row.std(ddof=1) / math.sqrt(num_particles)) if num_particles > 1 else float("nan")
                )
            else:
                estimate = float(top + math.log(mean_w))
                stderr = (
                    float(w.std(ddof=1) / math.sqrt(num_particles) / mean_w)
                    if num_particles > 1
                    else float("nan")
                )
        records.append(
            AnswerEstimate(
                questions[b], answers[b], estimate, stderr, ess, float(khat[b]), num_particles, method, kind
            )
        )
    return records
