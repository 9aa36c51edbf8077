"""Certified lower bounds on log p(answer | question): bounds that hold with a stated probability.

An estimate with a standard error says where log p probably is; a certified bound says that the actual answer had
*at least* this probability, except with probability at most ``delta`` over the estimator's randomness. Importance
weights (and AIS weights) are unbiased for p, so Markov's inequality gives, for the mean ``p_hat`` of K weights,

    P(p_hat >= p / delta) <= delta,    i.e.    log p >= log p_hat - log(1/delta)  with probability >= 1 - delta

(Gogate, Bidyuk & Dechter 2007; Grosse, Ghahramani & Adams 2015, "Sandwiching the marginal likelihood"). Splitting
the K weights into M independent groups with unbiased means ``p_hat_1..p_hat_M`` tightens it: the minimum exceeds
``p / delta^(1/M)`` only when every group does, with probability at most ``delta``, so

    log p >= min_m log p_hat_m - log(1/delta) / M.

Many small groups shrink the slack ``log(1/delta) / M`` but lower the minimum; which M is best depends on how
much the weights vary, which is not known before drawing them. :func:`certified_log_bounds` therefore takes the
best of several M, each at its share of ``delta`` (a union bound): ``M = 1`` at ``0.8 delta`` (so the bound is
never more than ``log(1/0.8) = 0.22`` nats below the plain Markov bound), and ``M = 4, 8, ... <= 64`` sharing the
rest. Groups are contiguous blocks of particles, which are independent draws for the guide and prior proposals and
for AIS chains; a defensive mixture allocates its particles deterministically (guide first), so only ``M = 1`` is
valid for it (``max_groups=1``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from retro.errors import RetroError
from retro.inference.results import AnswerEstimate, Estimate

__all__ = [
    "certified_log_bounds",
    "certified_records",
    "with_certified_bounds",
    "check_delta",
    "group_counts",
    "PLAIN_SHARE",
    "MAX_GROUPS",
]

PLAIN_SHARE = 0.8  # the share of delta spent on the plain (one group) Markov bound
MAX_GROUPS = 64


def check_delta(delta: float) -> float:
    """``delta`` as a float in (0, 1), else a :class:`RetroError`."""
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0.0 < float(delta) < 1.0:
        raise RetroError(f"certify: delta must be a probability in (0, 1), got {delta!r}")
    return float(delta)


def group_counts(num_particles: int, max_groups: int = MAX_GROUPS) -> list[int]:
    """The numbers of groups M tried for ``num_particles`` weights: 1, then 4, 8, 16, ... up to ``min(K,
    max_groups)``."""
    counts, m = [1], 4
    while m <= min(num_particles, max_groups):
        counts.append(m)
        m *= 2
    return counts


def _log_group_means(log_w: torch.Tensor, groups: int) -> torch.Tensor:
    """``[groups, B]`` log of the mean weight of each contiguous block of particles (``log_w`` is ``[K, B]``)."""
    return torch.stack([block.logsumexp(0) - math.log(len(block)) for block in log_w.tensor_split(groups, 0)])


def certified_log_bounds(log_w: torch.Tensor, delta: float, max_groups: int = MAX_GROUPS) -> torch.Tensor:
    """``Tensor[B]`` (float64) of lower bounds on log p that each hold with probability at least ``1 - delta``.

    Args:
        log_w: ``[K, B]`` log weights, unbiased for p (independent particles or AIS chains).
        delta: the probability with which a bound may fail.
        max_groups: the largest number of groups tried (1: the plain Markov bound ``log p_hat - log(1/delta)``).
    """
    delta = check_delta(delta)
    log_w = log_w.detach().to(torch.float64).cpu()
    counts = group_counts(log_w.shape[0], max_groups)
    extra = len(counts) - 1
    shares = [PLAIN_SHARE] + [(1 - PLAIN_SHARE) / extra] * extra if extra else [1.0]
    bounds = [
        _log_group_means(log_w, m).min(0).values - math.log(1 / (share * delta)) / m
        for m, share in zip(counts, shares)
    ]
    return torch.stack(bounds).max(0).values


def certified_records(
    log_w: torch.Tensor,
    questions: Sequence[str],
    answers: Sequence[str],
    method: str,
    delta: float,
    max_groups: int = MAX_GROUPS,
) -> list[AnswerEstimate]:
    """One record of kind ``"certified"`` per answer: its bound (:func:`certified_log_bounds`) as ``log_prob``,
    ``stderr`` 0 (the bound's doubt is ``delta``), method ``"METHOD+certify(DELTA)"``."""
    bounds = certified_log_bounds(log_w, delta, max_groups).tolist()
    num_particles = log_w.shape[0]
    label = f"{method}+certify({delta:g})"
    nan = float("nan")
    return [
        AnswerEstimate(q, a, float(b), 0.0, nan, nan, num_particles, label, "certified")
        for q, a, b in zip(questions, answers, bounds)
    ]


def with_certified_bounds(result: Estimate, delta: float, max_groups: int = MAX_GROUPS) -> Estimate:
    """``result`` with ``info.certified``: certified bounds from its log weights, or, where no weights were drawn,
    its own values when they are exact or a deterministic lower bound (they hold with probability 1)."""
    delta = check_delta(delta)
    records, info = result
    if info.log_weights is not None:
        questions, answers = [r.question for r in records], [r.answer for r in records]
        certified = certified_records(info.log_weights, questions, answers, info.method, delta, max_groups)
    else:
        random = [r for r in records if not (r.kind in ("exact", "lower_bound") and r.stderr == 0)]
        if random:
            raise RetroError(f"certify: {random[0].method} keeps no weights to certify its estimates with")
        label = f"+certify({delta:g})"
        certified = [dataclasses.replace(r, method=r.method + label, kind="certified") for r in records]
    return Estimate(records, dataclasses.replace(info, certified=certified))
