"""Are the error bars right? Standardized errors of estimates against exact values, and the contract's limits.

For records of kind ``"estimate"``, ``z = (estimate - exact) / stderr`` should behave like a standard Normal draw:
the share with ``|z| <= 1.96`` near 95%, the mean of ``z^2`` near 1 (so error bars that are all too wide fail as
surely as ones too narrow) and, where the bias is negligible, the mean of ``z`` near 0. For records of kind
``"lower_bound"`` (and for certified bounds) only one side matters: how often the record sits above the exact
value. :func:`check` states the limits as multiples of each statistic's own standard error (binomial for shares), so
a test built on it fails by chance with probability of order 1e-4, never because its tolerance was tuned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retro.inference.results import AnswerEstimate

__all__ = [
    "Calibration",
    "calibration",
    "standardized_errors",
    "check",
    "COVERAGE",
    "LOWER_BOUND_MISS",
    "SIGMAS",
    "Case",
    "reference_cases",
    "run_on_cases",
    "wide_guide",
]

COVERAGE = 0.95  # the share of |z| <= Z95 a calibrated standard error gives
LOWER_BOUND_MISS = 0.025  # the share of lower bounds whose 95% interval may sit above the exact value
SIGMAS = 4.0  # limits are this many of a statistic's own standard errors
_Z95 = 1.959963984540054
# Reference values by quadrature need far fewer nodes than exact's default (801) for these smooth integrands: the
# trapezoid rule over +-9 prior sds at 201 nodes agrees with 801 to 1e-9 nats here (tests/inference/test_calibration).
QUADRATURE_NODES = 201


@dataclass(frozen=True)
class Calibration:
    """How one estimator's records at one budget compare with exact values.

    Attributes:
        method, budget: the estimator and its budget (particles or chains per answer).
        kind: the records' kind (``"estimate"`` or ``"lower_bound"``).
        num_answers: answers compared (records whose exact value is finite).
        coverage: share of answers with ``|z| <= 1.96`` (estimates).
        mean_z2, mean_z2_stderr: mean of ``z^2`` and its standard error (``sd(z^2) / sqrt(n)``).
        mean_z, mean_z_stderr: mean of ``z`` and its standard error.
        above: share of answers whose interval ``[value - 1.96 stderr, value + 1.96 stderr]`` lies above the
            exact value (for a lower bound; for certified bounds, pass ``stderr=0`` records).
        mean_gap: mean of ``exact - value`` (how far below the truth; positive for a bound).
    """

    method: str
    budget: int
    kind: str
    num_answers: int
    coverage: float
    mean_z2: float
    mean_z2_stderr: float
    mean_z: float
    mean_z_stderr: float
    above: float
    mean_gap: float


def standardized_errors(records: Sequence[AnswerEstimate], exact_values: Sequence[float]) -> np.ndarray:
    """``z = (estimate - exact) / stderr`` per record (``+-inf`` where a zero or missing standard error meets a
    wrong value: an error bar that claims no doubt and is wrong counts as a miss; 0 where it is right)."""
    estimate = np.array([r.log_prob for r in records], dtype=np.float64)
    stderr = np.array([r.stderr for r in records], dtype=np.float64)
    error = estimate - np.asarray(exact_values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = error / stderr
    doubtless = ~(stderr > 0)  # 0 or nan
    z[doubtless] = np.where(error[doubtless] == 0, 0.0, np.sign(error[doubtless]) * np.inf)
    return z


def calibration(
    records: Sequence[AnswerEstimate], exact_values: Sequence[float], budget: int | None = None
) -> Calibration:
    """Standardized-error statistics of ``records`` against ``exact_values`` (answers with a finite exact value)."""
    exact_values = np.asarray(exact_values, dtype=np.float64)
    if len(records) != len(exact_values):
        raise ValueError(f"{len(records)} records for {len(exact_values)} exact values")
    if not records:
        raise ValueError("no records to compare")
    keep = np.isfinite(exact_values)
    records = [r for r, k in zip(records, keep) if k]
    exact_values = exact_values[keep]
    z = standardized_errors(records, exact_values)
    n = len(z)
    value = np.array([r.log_prob for r in records])
    stderr = np.nan_to_num(np.array([r.stderr for r in records]), nan=0.0)
    with np.errstate(invalid="ignore"):
        z2 = z**2
        stats = dict(
            coverage=float(np.mean(np.abs(z) <= _Z95)),
            mean_z2=float(z2.mean()),
            mean_z2_stderr=float(z2.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
            mean_z=float(z.mean()),
            mean_z_stderr=float(z.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
            above=float(np.mean(value - _Z95 * stderr > exact_values)),
            mean_gap=float(np.mean(exact_values - value)),
        )
    kinds = {r.kind for r in records}
    return Calibration(
        method=records[0].method,
        budget=records[0].num_particles if budget is None else budget,
        kind=kinds.pop() if len(kinds) == 1 else "mixed",
        num_answers=n,
        **stats,
    )


def _binomial_limit(share: float, n: int) -> float:
    return SIGMAS * math.sqrt(share * (1 - share) / n)


def check(result: Calibration, default_budget: bool, delta: float | None = None) -> list[str]:
    """The calibration contract's failures (empty when it holds).

    ``"estimate"``: coverage 95% within 4 binomial standard errors; mean z^2 equal to 1 within 4 of its standard
    errors; at the default budget also ``|mean z| <= 4 / sqrt(n)`` (a bias small against the error bars).
    ``"lower_bound"``: the share of intervals above the exact value at most 2.5% plus 4 binomial standard
    errors; ``"certified"`` (bounds at confidence ``1 - delta``): the share above at most ``delta`` plus 4
    binomial standard errors. Exact records pass.
    """
    n, failures = result.num_answers, []
    label = f"{result.method} at budget {result.budget} ({n} answers)"
    if result.kind == "estimate":
        if abs(result.coverage - COVERAGE) > _binomial_limit(COVERAGE, n):
            failures.append(
                f"{label}: coverage {result.coverage:.3f}, expected 0.95 +- {_binomial_limit(COVERAGE, n):.3f}"
            )
        if not abs(result.mean_z2 - 1) <= SIGMAS * result.mean_z2_stderr:
            failures.append(
                f"{label}: mean z^2 {result.mean_z2:.3f} +- {result.mean_z2_stderr:.3f}, expected 1"
            )
        if default_budget and not abs(result.mean_z) <= SIGMAS / math.sqrt(n):
            failures.append(
                f"{label}: mean z {result.mean_z:.3f}, expected |mean z| <= {SIGMAS / math.sqrt(n):.3f}"
            )
    elif result.kind in ("lower_bound", "certified"):
        if result.kind == "certified" and delta is None:
            raise ValueError("checking certified bounds needs their delta")
        miss = LOWER_BOUND_MISS if result.kind == "lower_bound" else delta
        if result.above > miss + _binomial_limit(miss, n):
            failures.append(
                f"{label}: {result.above:.3f} of the bounds sit above the exact value (at most {miss} "
                f"+ {_binomial_limit(miss, n):.3f})"
            )
    return failures


@dataclass(frozen=True)
class Case:
    """A program with exact log p, answers to score, their exact values and a guide for guided estimators."""

    name: str
    program: object
    guide: object
    questions: list[str]
    answers: list[str]
    exact: np.ndarray


def wide_guide(
    program, example: tuple[Sequence[str], Sequence[str]], scale: float = 1.5, hidden_dim: int = 2
):
    """An :class:`~retro.inference.guides.AmortizedGuide` that ignores its inputs: Normal latents ~ N(0, scale^2),
    discrete ones uniform. Wider than the standard Normal priors of the built-in programs, so its importance
    weights have finite variance, the premise of every delta-method error bar (a narrow untrained guide breaks it:
    see the README's calibration section). Its heads' weights are zero, so the encoders' width (``hidden_dim``)
    changes no draw and no density, only the cost of running them: the narrowest is the cheapest."""
    import torch

    from retro.inference.guides import AmortizedGuide

    guide = AmortizedGuide(program, hidden_dim=hidden_dim, example=example)
    with torch.no_grad():
        for name, head in guide.heads.items():
            head.weight.zero_()
            head.bias.zero_()
            if guide.sites[name].family == "normal":
                half = head.bias.shape[0] // 2
                head.bias[half:] = math.log(math.expm1(scale - 1e-4))  # softplus(raw) + 1e-4 = scale
    return guide


def reference_cases(num_answers: int, seed: int = 0) -> list[Case]:
    """The programs with exact log p: the built-in humans (arithmetic, numbers, typist) on their own answers, and
    two small untrained imitators (``MixtureSeq2Seq``, discrete style; ``LatentSeq2Seq`` with a 1-D Normal latent;
    hidden size 8, over the arithmetic human's symbols) on the arithmetic human's pairs; each with
    :func:`wide_guide`. Exact values are computed once here."""
    import torch

    from retro.humans import HUMANS, ArithmeticHuman, make_human
    from retro.inference.registry import estimate
    from retro.models import LatentSeq2Seq, MixtureSeq2Seq
    from retro.text import AlphabetCodec

    cases = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        programs = [(name, make_human(name), name) for name in sorted(HUMANS)]
        # The imitators are small and spell in the arithmetic human's own symbols (every answer it gives is a
        # string over them): what is checked, error bars against exact values, does not depend on their size,
        # and AIS's gradient passes through a byte-level decoder cost twice as much.
        codec = AlphabetCodec(ArithmeticHuman.typo_alphabet)
        small = {"codec": codec, "question_codec": codec, "max_length": 16, "hidden_dim": 8}
        programs += [
            ("mixture", MixtureSeq2Seq(num_styles=3, **small), "arithmetic"),
            ("latent", LatentSeq2Seq(latent_dim=1, **small), "arithmetic"),
        ]
        for name, program, data in programs:
            questions, answers = make_human(data).draw(num_answers, seed=seed + 1)
            guide = wide_guide(program, (questions[:1], answers[:1]))
            exact = estimate("exact", program, questions, answers, nodes=QUADRATURE_NODES).records
            cases.append(
                Case(name, program, guide, questions, answers, np.array([r.log_prob for r in exact]))
            )
    return cases


def run_on_cases(
    method: str,
    cases: Sequence[Case],
    num_particles: int,
    min_answers: int,
    seed: int = 0,
    **options,
) -> tuple[list[AnswerEstimate], np.ndarray, list[AnswerEstimate] | None]:
    """Run ``method`` (a registered estimator, e.g. ``"importance[prior]"``) on the cases where it estimates
    rather than computes exactly, ``ceil(min_answers / cases)`` answers from each; returns its records, their
    exact values and (with ``certify=``) its certified records."""
    from retro.inference.registry import estimate

    def call(case: Case, count: int):
        return estimate(
            method,
            case.program,
            case.questions[:count],
            case.answers[:count],
            guide=case.guide,
            num_particles=num_particles,
            seed=seed,
            **options,
        )

    sampled = [case for case in cases if call(case, 1).records[0].kind != "exact"]
    if not sampled:
        return [], np.zeros(0), None
    count = math.ceil(min_answers / len(sampled))
    if any(len(case.answers) < count for case in sampled):
        raise ValueError(f"{method} needs {count} answers per case; the cases have fewer")
    records, exact, certified = [], [], []
    for case in sampled:
        result = call(case, count)
        records += result.records
        exact.append(case.exact[:count])
        certified = (
            None if result.info.certified is None or certified is None else certified + result.info.certified
        )
    return records, np.concatenate(exact), certified
