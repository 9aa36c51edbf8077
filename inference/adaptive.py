"""Adaptive budgets: as many particles (or AIS chains) per answer as its standard error needs.

``estimate(..., target_stderr=S)`` spends particles where the weights vary: easy answers stop early, hard ones get
up to the maximum. Choosing the budget from the same draws that are reported would bias the estimate (an answer
whose first draws happened to agree would stop with an error bar that is too small), so the budget is chosen on
*pilot* draws and the reported estimate comes from fresh ones:

1. Pilot rounds: every answer is scored with ``pilot`` particles from a pilot stream (the seed mixed with the
   round number, so its draws are independent of the reported ones). The spread of its draws, ``s`` (its standard
   error before the small-sample widening, :func:`~retro.inference.weight_records.spread_stderr`), predicts the
   budget ``K = pilot * (s / S)^2 * SAFETY`` (standard errors shrink as ``1/sqrt(K)``), times the square of the
   widening that the ESS expected at ``K`` will give the reported error bar. Only answers whose
   prediction exceeds ``SETTLE_RATIO * pilot`` go to another round with ``ROUND_GROWTH`` times as many pilot
   particles (a small pilot misjudges heavy-tailed weights, and an error in a long extrapolation costs the most),
   until the prediction is close or a next pilot would cost over a quarter of the maximum budget.
2. The reported run: each answer gets its predicted budget (rounded up to a grid of ``GRID_STEP`` ratios, so that
   few estimator calls serve all answers, and capped at the maximum) and is scored afresh with the call's own
   seed: its record is exactly what ``estimate(..., num_particles=K)`` gives for it. Given the budget, the reported
   draws are an ordinary fixed-budget run, so its error bar keeps its calibration (the calibration test checks).

Each record's ``num_particles`` is the budget it was scored with; ``info.diagnostics`` holds ``particles[B]`` and
``pilot_particles[B]`` (what the pilot rounds spent) and ``target_stderr``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from retro.errors import RetroError
from retro.inference.results import AnswerEstimate, Estimate, EstimateInfo
from retro.inference.weight_records import small_sample_factor, spread_stderr

__all__ = ["adaptive_estimate", "budget_grid", "SAFETY", "ROUND_GROWTH", "SETTLE_RATIO", "GRID_STEP"]

# A variance estimated from n Normal draws predicts 1 / variance too high by (n - 1) / (n - 3) on average (1.29 at
# the first pilot's n = 10): budgets are scaled up by about that, so the reported variance averages about S^2.
SAFETY = 1.25
ROUND_GROWTH = 4  # each pilot round has this many times the particles of the last
SETTLE_RATIO = 16  # a pilot settles the budgets it predicts up to this many times its own
GRID_STEP = 2**0.25  # reported budgets are rounded up to powers of this ratio (9% more particles at most)

# run(questions, answers, num_particles, seed, answer_ids) -> Estimate
Run = Callable[[Sequence[str], Sequence[str], int, int, torch.Tensor], Estimate]


def _pilot_seed(seed: int, round_: int) -> int:
    """A seed for pilot round ``round_``, far from ``seed`` (splitmix64 of both), so its streams are unrelated."""
    x = (seed * 0x9E3779B97F4A7C15 + round_ + 1) & (2**64 - 1)
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return (x ^ (x >> 31)) >> 2  # 62 bits, like the registry's drawn seeds


def budget_grid(budget: int, smallest: int, largest: int) -> int:
    """``budget`` rounded up to ``smallest * GRID_STEP^j`` (an integer), within ``[smallest, largest]``."""
    if budget <= smallest:
        return smallest
    steps = math.ceil(math.log(budget / smallest) / math.log(GRID_STEP) - 1e-9)
    return min(largest, math.ceil(smallest * GRID_STEP**steps - 1e-9))


def _predicted(record: AnswerEstimate, pilot: int, target: float, largest: int) -> int:
    """The budget at which the record's reported (widened) standard error is predicted to reach ``target``."""
    spread = spread_stderr(record)
    if not math.isfinite(spread):  # no spread estimated (one draw, impossible answer): the most we may spend
        return largest
    budget = max(2, math.ceil(pilot * (spread / target) ** 2 * SAFETY))
    # The reported error bar is the spread widened for the ESS it will have (the ESS grows with the budget).
    ess = record.ess * budget / pilot if record.kind != "lower_bound" else budget
    widening = float(small_sample_factor(min(max(ess, 2.0), budget)))
    return max(1, math.ceil(budget * widening**2))


def adaptive_estimate(
    run: Run,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    target_stderr: float,
    max_particles: int,
    pilot_particles: int,
    seed: int,
    answer_ids: torch.Tensor,
) -> Estimate:
    """Score each answer with the budget its pilot standard error calls for (see the module docstring).

    Args:
        run: runs the estimator on some answers with a given budget, seed and answer ids.
        target_stderr: S, the standard error (nats) each answer should reach.
        max_particles: the largest budget any answer gets.
        pilot_particles: the first pilot round's budget, and the smallest reported budget.
        seed, answer_ids: the call's seed and the answers' ids (their keyed streams).
    """
    if not (isinstance(target_stderr, (int, float)) and math.isfinite(target_stderr) and target_stderr > 0):
        raise RetroError(f"target_stderr must be a positive number of nats, got {target_stderr!r}")
    if pilot_particles < 2:
        raise RetroError(f"adaptive budgets need pilots of at least 2 particles, got {pilot_particles}")
    if max_particles < pilot_particles:
        raise RetroError(
            f"the maximum budget ({max_particles}) is below the pilot's ({pilot_particles}); raise num_particles"
        )
    num_answers = len(answers)
    budget = torch.zeros(num_answers, dtype=torch.int64)
    spent = torch.zeros(num_answers, dtype=torch.int64)
    active = torch.arange(num_answers)
    pilot, round_ = pilot_particles, 0
    while len(active):
        index = active.tolist()
        result = run(
            [questions[i] for i in index],
            [answers[i] for i in index],
            pilot,
            _pilot_seed(seed, round_),
            answer_ids[active],
        )
        if all(
            r.kind == "exact" for r in result.records
        ):  # nothing random: the pilot's values are the answer
            if round_ == 0:
                return result
            budget[active] = pilot
            break
        spent[active] += pilot
        predicted = torch.tensor([_predicted(r, pilot, target_stderr, max_particles) for r in result.records])
        # Settle when the prediction is near enough the pilot, or when a next pilot would cost over a quarter of
        # the maximum (pilots then never cost more than a third of it).
        settled = (predicted <= SETTLE_RATIO * pilot) | (ROUND_GROWTH * pilot > max_particles / ROUND_GROWTH)
        budget[active[settled]] = predicted[settled]
        active = active[~settled]
        pilot, round_ = pilot * ROUND_GROWTH, round_ + 1
    budget = torch.tensor([budget_grid(int(b), pilot_particles, max_particles) for b in budget])
    return _reported_run(
        run, questions, answers, budget, spent, target_stderr, max_particles, seed, answer_ids
    )


def _reported_run(run, questions, answers, budget, spent, target_stderr, max_particles, seed, answer_ids):
    """Fresh draws with the call's seed, one estimator call per distinct budget, reassembled in input order."""
    records: list[AnswerEstimate | None] = [None] * len(answers)
    certified: list[AnswerEstimate | None] = [None] * len(answers)
    method = None
    for k in budget.unique().tolist():
        index = (budget == k).nonzero().squeeze(-1)
        result = run(
            [questions[i] for i in index.tolist()],
            [answers[i] for i in index.tolist()],
            int(k),
            seed,
            answer_ids[index],
        )
        method = result.info.method
        for position, i in enumerate(index.tolist()):
            records[i] = result.records[position]
            if result.info.certified is not None:
                certified[i] = result.info.certified[position]
    diagnostics = {"particles": budget, "pilot_particles": spent, "target_stderr": float(target_stderr)}
    info = EstimateInfo(
        method,
        max_particles,
        seed=seed,
        diagnostics=diagnostics,
        certified=None if any(c is None for c in certified) else certified,
    )
    return Estimate(records, info)
