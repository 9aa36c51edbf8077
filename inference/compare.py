"""Compare estimators of log p(answer | question) at several compute budgets, against exact values when they exist.

A *budget* is the number of particles for ``elbo`` and ``importance[...]`` and the number of annealing steps for
``ais``. Each (method, budget) is run on the same answers, timed, and summarized: mean estimate, standard error of
that mean, and, where the program's exact log p is computable, bias and mean |error| per answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from retro.errors import RetroError
from retro.inference.ais import ais
from retro.inference.elbo import elbo
from retro.inference.exact import exact
from retro.inference.importance import importance
from retro.inference.results import AnswerEstimate, summarize
from retro.program import StringProgram

__all__ = ["ESTIMATORS", "ComparisonRow", "Comparison", "compare", "default_methods"]

Estimator = Callable[[StringProgram, object, Sequence[str], Sequence[str], int], list[AnswerEstimate]]

ESTIMATORS: dict[str, Estimator] = {
    "elbo": lambda p, g, q, a, k: elbo(p, q, a, guide=g, num_particles=k),
    "importance[guide]": lambda p, g, q, a, k: importance(
        p, q, a, guide=g, proposal="guide", num_particles=k
    ),
    "importance[prior]": lambda p, g, q, a, k: importance(p, q, a, proposal="prior", num_particles=k),
    "importance[mixture]": lambda p, g, q, a, k: importance(
        p, q, a, guide=g, proposal="mixture", num_particles=k
    ),
    "ais[prior]": lambda p, g, q, a, k: ais(p, q, a, proposal="prior", num_steps=k),
    "ais[guide]": lambda p, g, q, a, k: ais(p, q, a, guide=g, proposal="guide", num_steps=k),
}
NEEDS_GUIDE = ("elbo", "importance[guide]", "importance[mixture]", "ais[guide]")
ALIASES = {"importance": "importance[{proposal}]", "ais": "ais[{proposal}]"}


def default_methods(has_guide: bool) -> list[str]:
    proposal = "guide" if has_guide else "prior"
    return (["elbo"] if has_guide else []) + [f"importance[{proposal}]", f"ais[{proposal}]"]


def _resolve(method: str, has_guide: bool) -> str:
    name = ALIASES.get(method, method).format(proposal="guide" if has_guide else "prior")
    if name not in ESTIMATORS:
        raise RetroError(f"unknown method {method!r}; expected one of {', '.join([*ALIASES, *ESTIMATORS])}")
    if name in NEEDS_GUIDE and not has_guide:
        raise RetroError(f"method {name!r} needs a trained guide; this model has none")
    return name


@dataclass(frozen=True)
class ComparisonRow:
    """One (method, budget): the mean estimate with its standard error, error against exact, and time."""

    method: str
    budget: int
    num_answers: int
    log_prob_mean: float
    stderr: float
    bias: float | None
    mean_abs_error: float | None
    khat_mean: float | None
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
) -> Comparison:
    """Run every method at every budget on the same answers (each run seeded with ``seed``).

    ``reference``: an earlier comparison on the same answers whose exact values (and their time) are reused
    instead of computed again, e.g. when AIS runs with other budgets than the particle methods.
    """
    names = [_resolve(m, guide is not None) for m in methods]
    if not budgets or min(budgets) < 1:
        raise RetroError(f"budgets must be positive integers, got {list(budgets)}")
    if reference is not None:
        exact_records, exact_seconds = reference.exact, reference.exact_seconds
    else:
        start = time.perf_counter()
        try:
            exact_records = exact(program, questions, answers)
        except RetroError:
            exact_records = None
        exact_seconds = time.perf_counter() - start if exact_records is not None else None
    truth = [r.log_prob for r in exact_records] if exact_records is not None else None
    rows, estimates = [], {}
    for name in names:
        for budget in budgets:
            torch.manual_seed(seed)
            start = time.perf_counter()
            records = ESTIMATORS[name](program, guide, questions, answers, budget)
            seconds = time.perf_counter() - start
            summary = summarize(records)
            bias = abs_error = None
            if truth is not None:
                errors = [r.log_prob - t for r, t in zip(records, truth)]
                bias = sum(errors) / len(errors)
                abs_error = sum(abs(e) for e in errors) / len(errors)
            row = ComparisonRow(
                name,
                budget,
                len(records),
                summary.log_prob_mean,
                summary.mc_stderr,
                bias,
                abs_error,
                summary.khat_mean,
                seconds,
                seconds / len(records),
            )
            rows.append(row)
            estimates[(name, budget)] = records
            if on_row is not None:
                on_row(row)
    return Comparison(rows, estimates, exact_records, exact_seconds)
