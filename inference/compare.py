"""Compare estimators of log p(answer | question) at several compute budgets, against exact values when they exist.

A *budget* is ``num_particles`` of the registered estimator (particles; chains for AIS). Each (method, budget) is
run on the same answers with the same seed, timed after a warm-up run of the method (so no start-up cost is
charged to the first row), and summarized: mean estimate, Monte Carlo standard error of that mean, how many answers
have a Pareto k-hat above the reliability threshold and the smallest ESS, and, where the program's exact log p is
computable, bias and mean |error| per answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from retro.errors import RetroError
from retro.inference.log_weights import preferred_proposal
from retro.inference.registry import estimate, registrations, resolve_method
from retro.inference.results import AnswerEstimate, summarize
from retro.program import StringProgram

__all__ = ["ComparisonRow", "Comparison", "compare", "default_methods"]


def default_methods(has_guide: bool, preferred: str = "guide") -> list[str]:
    """Every registered estimator that samples, with its default proposal: ``preferred`` (the guide's choice) or
    the guide when there is one, else the prior (see :meth:`retro.inference.registry.Registration.default_proposal`)."""
    methods = []
    for registration in registrations():
        if registration.kind == "exact" or (registration.needs_guide and not has_guide):
            continue
        proposal = registration.default_proposal(has_guide, preferred)
        methods.append(f"{registration.name}[{proposal}]" if proposal else registration.name)
    return methods


@dataclass(frozen=True)
class ComparisonRow:
    """One (method, budget): the mean estimate with its standard error, error against exact, diagnostics, time.

    ``stderr``: the Monte Carlo standard error of ``log_prob_mean`` (``Summary.mc_stderr``: how far it may be
    from the exact mean over these answers), not the total error of a dataset mean (``Summary.stderr``).
    ``khat_over_threshold``: answers whose k-hat exceeds :func:`~retro.inference.results.khat_threshold` of the
    budget (unreliable estimates); ``ess_min``: the smallest effective sample size over the answers (``nan`` when no
    weights were drawn)."""

    method: str
    budget: int
    num_answers: int
    log_prob_mean: float
    stderr: float
    bias: float | None
    mean_abs_error: float | None
    khat_mean: float | None
    khat_over_threshold: int
    ess_min: float
    seconds: float
    seconds_per_answer: float

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Comparison:
    rows: list[ComparisonRow]
    estimates: dict[tuple[str, int], list[AnswerEstimate]]
    exact: list[AnswerEstimate] | None
    exact_seconds: float | None


def _exact(program, questions, answers) -> tuple[list[AnswerEstimate] | None, float | None]:
    try:
        result = estimate("exact", program, questions, answers)
    except RetroError:
        return None, None
    return result.records, result.info.seconds


def compare(
    program: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    methods: Sequence[str],
    budgets: Sequence[int],
    guide=None,
    seed: int = 0,
    on_row: Callable[[ComparisonRow], None] | None = None,
    reference: Comparison | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Comparison:
    """Run every method at every budget on the same answers (each run seeded with ``seed``).

    Args:
        methods: registered method names, e.g. ``"importance[prior]"`` or ``"ais"`` (see
            :func:`~retro.inference.registry.resolve_method`).
        budgets: ``num_particles`` values (particles; chains for AIS).
        reference: an earlier comparison on the same answers whose exact values (and their time) are reused
            instead of computed again.
        options: further options per estimator name, e.g. ``{"ais": {"num_steps": 8}}``.
    """
    resolved = [resolve_method(m, guide is not None, preferred_proposal(guide)) for m in methods]
    if not budgets or any(int(b) != b or b < 1 for b in budgets):
        raise RetroError(f"budgets must be positive integers, got {list(budgets)}")
    options = options or {}
    if reference is not None:
        exact_records, exact_seconds = reference.exact, reference.exact_seconds
    else:
        exact_records, exact_seconds = _exact(program, questions, answers)
    truth = [r.log_prob for r in exact_records] if exact_records is not None else None
    rows, estimates = [], {}
    for registration, proposal in resolved:
        name = f"{registration.name}[{proposal}]" if proposal else registration.name
        extra = dict(options.get(registration.name, {}))

        def run(count: int, budget: int, name=name, extra=extra):
            return estimate(
                name,
                program,
                questions[:count],
                answers[:count],
                guide=guide,
                num_particles=budget,
                seed=seed,
                **extra,
            )

        run(1, min(budgets))  # warm-up: start-up costs (first calls, allocations) are not charged to a row
        for budget in budgets:
            result = run(len(answers), budget)
            records = result.records
            rows.append(_row(name, budget, records, truth, result.info.seconds))
            estimates[(name, budget)] = records
            if on_row is not None:
                on_row(rows[-1])
    return Comparison(rows, estimates, exact_records, exact_seconds)


def _row(method: str, budget: int, records, truth, seconds: float) -> ComparisonRow:
    summary = summarize(records)
    bias = abs_error = None
    if truth is not None:
        errors = [r.log_prob - t for r, t in zip(records, truth)]
        bias = sum(errors) / len(errors)
        abs_error = sum(abs(e) for e in errors) / len(errors)
    ess = [r.ess for r in records if not math.isnan(r.ess)]
    return ComparisonRow(
        method,
        budget,
        len(records),
        summary.log_prob_mean,
        summary.mc_stderr,
        bias,
        abs_error,
        summary.khat_mean,
        summary.unreliable,
        min(ess) if ess else float("nan"),
        seconds,
        seconds / len(records),
    )
