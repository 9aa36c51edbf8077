"""The per-answer record every estimator returns, and summaries over a set of them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

import torch

__all__ = [
    "AnswerEstimate",
    "Estimate",
    "EstimateInfo",
    "Kind",
    "Target",
    "Summary",
    "summarize",
    "khat_threshold",
    "unreliable",
]

Kind = Literal["exact", "lower_bound", "estimate", "certified"]
Target = Literal["canonical", "marginal"]


@dataclass(frozen=True)
class AnswerEstimate:
    """log p(answer | question) for one human answer, with its own doubt.

    Attributes:
        question, answer: the pair scored.
        log_prob: the estimate (nats).
        stderr: Monte Carlo standard error of ``log_prob``: how far this answer's estimate may be from its own
            exact log p (0 when exact; delta method for importance sampling). Not the :attr:`Summary.stderr` of a
            dataset mean, which also counts the spread across answers.
        ess: effective sample size of the importance weights (``nan`` when no weights were drawn).
        khat: Pareto k-hat of the weights (PSIS); reliable when below :func:`khat_threshold` (see :func:`unreliable`).
        num_particles: particles (or quadrature nodes / enumerated values) used.
        method: estimator name, e.g. ``"importance[guide]"``.
        kind: ``"exact"``, ``"lower_bound"`` (in expectation), ``"estimate"`` (consistent) or ``"certified"`` (a
            bound that holds with a stated probability, see :mod:`retro.inference.certify`).
        target: what is scored: ``"canonical"``, the answer's one encoding by the codec (for a tokenizer with
            several tokenizations of a string, a lower bound on the string's probability), or ``"marginal"``,
            the string's probability summed over all its tokenizations (:mod:`retro.inference.marginal`).
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
    target: Target = "canonical"

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
        certified: with ``estimate(..., certify=delta)``, one record of kind ``"certified"`` per answer: a lower
            bound on log p that holds with probability at least ``1 - delta`` (:mod:`retro.inference.certify`).
    """

    method: str
    num_particles: int
    seed: int | None = None
    seconds: float = float("nan")
    log_weights: torch.Tensor | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    certified: list[AnswerEstimate] | None = None


class Estimate(NamedTuple):
    """The result of every estimator: one record per answer, in input order, and what the call did."""

    records: list[AnswerEstimate]
    info: EstimateInfo


@dataclass(frozen=True)
class Summary:
    """Dataset-level view of per-answer estimates: mean log p and the standard error of that mean.

    Attributes:
        method: the estimator of the records.
        num_answers: answers summarized.
        log_prob_mean: mean estimated log p (nats per answer).
        stderr: *total* standard error of ``log_prob_mean`` as an estimate of the mean log p over the population
            the answers were drawn from: the spread across answers (sampling of the data) combined with the
            answers' Monte Carlo errors. Use it to compare models on held-out data.
        mc_stderr: the Monte Carlo part alone, ``sqrt(sum of the answers' AnswerEstimate.stderr**2) / n``: how far
            ``log_prob_mean`` may be from the exact mean over *these* answers (0 for exact records).
        khat_mean: mean Pareto k-hat over the answers that have one (``nan`` when none has).
        unreliable: answers whose estimate is :func:`unreliable` (k-hat over the threshold).
    """

    method: str
    num_answers: int
    log_prob_mean: float
    stderr: float
    mc_stderr: float
    khat_mean: float
    unreliable: int = 0


def khat_threshold(num_draws: int) -> float:
    """k-hat below which an estimate from ``num_draws`` weights is reliable: min(1 - 1/log10(S), 0.7)."""
    if num_draws <= 10:
        return 0.0
    return min(1.0 - 1.0 / math.log10(num_draws), 0.7)


def unreliable(estimate: AnswerEstimate) -> bool:
    """Whether the estimate's Pareto k-hat is over :func:`khat_threshold` for its particles (its weights are too
    heavy-tailed for the estimate, typically biased low, or its standard error to be trusted)."""
    return not math.isnan(estimate.khat) and estimate.khat > khat_threshold(estimate.num_particles)


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
        unreliable=sum(unreliable(e) for e in estimates),
    )
