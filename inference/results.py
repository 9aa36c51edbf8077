"""The per-answer record every estimator returns, and summaries over a set of them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

import torch

__all__ = ["AnswerEstimate", "Estimate", "EstimateInfo", "Kind", "Summary", "summarize"]

Kind = Literal["exact", "lower_bound", "estimate"]


@dataclass(frozen=True)
class AnswerEstimate:
    """log p(answer | question) for one human answer, with its own doubt.

    Attributes:
        question, answer: the pair scored.
        log_prob: the estimate (nats).
        stderr: Monte Carlo standard error of ``log_prob`` (0 when exact; delta method for importance sampling).
        ess: effective sample size of the importance weights (``nan`` when no weights were drawn).
        khat: Pareto k-hat of the weights (PSIS); reliable when below :func:`~retro.inference.psis.khat_threshold`.
        num_particles: particles (or quadrature nodes / enumerated values) used.
        method: estimator name, e.g. ``"importance[guide]"``.
        kind: ``"exact"``, ``"lower_bound"`` (in expectation) or ``"estimate"`` (consistent).
    """

    question: str
    answer: str
    log_prob: float
    stderr: float
    ess: float
    khat: float
    num_particles: int
    method: str
    kind: Kind

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: non-finite numbers other than -inf log_prob become ``None``."""
        out = asdict(self)
        for key in ("log_prob", "stderr", "ess", "khat"):
            value = out[key]
            if isinstance(value, float) and math.isnan(value):
                out[key] = None
        return out


@dataclass(frozen=True)
class EstimateInfo:
    """What one estimator call did, beside its per-answer records (as BlackJAX returns state + info).

    Attributes:
        method: the estimator as it ran, e.g. ``"importance[prior]"`` (``"exact"`` when a program without latents
            was scored exactly by a sampling estimator).
        num_particles: the budget used: particles per answer (chains for AIS; 0 for exact values).
        seed: the seed of the answers' random streams (``None`` when nothing was drawn).
        seconds: wall time of the call.
        log_weights: ``Tensor[K, B]`` (float64, CPU) of log weights where weights were drawn, else ``None``.
        diagnostics: estimator-specific values, e.g. AIS's ``acceptance[B]``, ``step_sizes[T - 1, B]`` and
            ``num_steps``.
    """

    method: str
    num_particles: int
    seed: int | None = None
    seconds: float = float("nan")
    log_weights: torch.Tensor | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)


class Estimate(NamedTuple):
    """The result of every estimator: one record per answer, in input order, and what the call did."""

    records: list[AnswerEstimate]
    info: EstimateInfo


@dataclass(frozen=True)
class Summary:
    """Dataset-level view of per-answer estimates: mean log p and the standard error of that mean.

    ``stderr`` combines the spread across answers (sampling of the data) with each answer's Monte Carlo error.
    """

    method: str
    num_answers: int
    log_prob_mean: float
    stderr: float
    mc_stderr: float
    khat_mean: float


def summarize(estimates: Sequence[AnswerEstimate] | Estimate) -> Summary:
    """Dataset-level summary of per-answer records (or of an :class:`Estimate`'s records)."""
    if isinstance(estimates, Estimate):
        estimates = estimates.records
    n = len(estimates)
    if n == 0:
        raise ValueError("no estimates to summarize")
    values = [e.log_prob for e in estimates]
    mean = sum(values) / n
    if n > 1 and all(math.isfinite(v) for v in values):
        spread = sum((v - mean) ** 2 for v in values) / (n - 1) / n
    else:
        spread = float("nan") if n > 1 else 0.0
    mc = math.sqrt(sum(e.stderr**2 for e in estimates if math.isfinite(e.stderr))) / n
    khats = [e.khat for e in estimates if not math.isnan(e.khat)]
    return Summary(
        method=estimates[0].method,
        num_answers=n,
        log_prob_mean=mean,
        stderr=math.sqrt(spread + mc**2),
        mc_stderr=mc,
        khat_mean=sum(khats) / len(khats) if khats else float("nan"),
    )
