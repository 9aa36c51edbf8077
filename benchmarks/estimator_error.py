"""Error against exact log p vs seconds per answer, for every estimator, on the same answers of the typist human.

The ``typist`` synthetic human has one continuous latent (its sloppiness), so its exact log p(answer | question)
is computable by quadrature, and every estimator's error per answer is known. Methods (all through
:func:`retro.inference.compare.compare`, on the same answers, each (method, budget) seeded alike):

* ``elbo``, ``importance[guide]``, ``importance[mixture]``, ``importance[prior]`` at K particles
  (``--particles``, default 10, 100, 1000). The guide is an ``AmortizedGuide`` trained briefly (``--guide-steps``)
  on answers drawn from the human with another seed.
* ``ais[prior]``, ``ais[guide]`` at T annealing steps (``--ais-steps``, default 4, 16, 48) with the default number
  of chains (:data:`retro.inference.ais.DEFAULT_NUM_CHAINS`).

Each row is a ``ComparisonRow``: mean estimate, ``stderr`` (the Monte Carlo standard error of that mean:
sqrt(sum of per-answer squared standard errors) / N), ``bias`` (mean of estimate - exact), ``mean_abs_error``
(mean of |estimate - exact|), ``khat_mean`` and time. Timing: after a warm-up on two answers, the whole comparison
runs ``--repeats`` times with the same seed (so the same estimates); each row keeps its best time. Scoring runs
in float64 (so the quadrature is exact to far below any Monte Carlo error); the guide is trained in float32.

``recommendation``: for each time budget per answer (< 1 ms, < 10 ms, < 100 ms, and no limit), the (method,
budget) with the smallest mean |error| among the rows that fit, the runner-up (the best row of another method),
and whether the winner is clearly better (their difference exceeds 2 standard errors; the standard error of a
mean |error| is at most the row's ``stderr``, since |e| is 1-Lipschitz); plus the rows on the Pareto front (no
other row is both faster and more accurate).

Usage::

    python benchmarks/estimator_error.py            # 100 answers (about 30 s on one core)
    python benchmarks/estimator_error.py --smoke    # 10 answers, tiny budgets (seconds)

Prints exactly one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import sys
import time
from collections.abc import Sequence

import numpy as np
import pyro
import torch

import retro
from retro.humans import make_human
from retro.inference import AmortizedGuide
from retro.inference.ais import DEFAULT_NUM_CHAINS
from retro.inference.compare import ComparisonRow, compare
from retro.inference.train import TrainConfig, train

PARTICLE_METHODS = ("elbo", "importance[prior]", "importance[guide]", "importance[mixture]")
AIS_METHODS = ("ais[prior]", "ais[guide]")
BUCKETS = (("< 1 ms", 1e-3), ("< 10 ms", 1e-2), ("< 100 ms", 1e-1), ("any", math.inf))
GUIDE_HIDDEN = 32
CLEAR_SIGMAS = 2.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train_guide(human, num_answers: int, steps: int, seed: int) -> tuple[AmortizedGuide, float]:
    """An ``AmortizedGuide`` for ``human``, trained (float32) on answers drawn with ``seed``; and its seconds."""
    torch.manual_seed(seed)
    questions, answers = human.draw(num_answers, seed=seed)
    guide = AmortizedGuide(human, hidden_dim=GUIDE_HIDDEN, example=(questions[:1], answers[:1]))
    start = time.perf_counter()
    config = TrainConfig(
        steps=steps, batch_size=32, learning_rate=3e-3, eval_every=10**9, seed=seed, progress=False
    )
    train(human, questions, answers, guide=guide, config=config)
    return guide, time.perf_counter() - start


def timed_compare(
    human, guide, questions, answers, methods, budgets, seed: int, repeats: int, reference=None, options=None
):
    """``compare`` run ``repeats`` times (same seed, same estimates); each row keeps its best time. Exact values
    are computed once (or taken from ``reference``)."""
    kwargs = dict(guide=guide, seed=seed, options=options)
    result = compare(human, questions, answers, methods, budgets, reference=reference, **kwargs)
    best = {(row.method, row.budget): row.seconds for row in result.rows}
    for _ in range(repeats - 1):
        rerun = compare(human, questions, answers, methods, budgets, reference=result, **kwargs)
        for row in rerun.rows:
            key = (row.method, row.budget)
            best[key] = min(best[key], row.seconds)
    rows = [
        dataclasses.replace(
            row,
            seconds=best[(row.method, row.budget)],
            seconds_per_answer=best[(row.method, row.budget)] / row.num_answers,
        )
        for row in result.rows
    ]
    return rows, result


def _brief(row: ComparisonRow) -> dict:
    return {
        "method": row.method,
        "budget": row.budget,
        "mean_abs_error": row.mean_abs_error,
        "stderr": row.stderr,
        "bias": row.bias,
        "seconds_per_answer": row.seconds_per_answer,
    }


def recommend(rows: Sequence[ComparisonRow]) -> dict:
    """Per time bucket, the row with the smallest mean |error| that fits, its runner-up, and the Pareto front."""
    buckets = []
    for label, limit in BUCKETS:
        fitting = sorted(
            (r for r in rows if r.seconds_per_answer < limit and r.mean_abs_error is not None),
            key=lambda r: r.mean_abs_error,
        )
        entry: dict = {"bucket": label, "max_seconds_per_answer": None if math.isinf(limit) else limit}
        if not fitting:
            entry.update(best=None, runner_up=None, clear_winner=None)
        else:
            best = fitting[0]
            runner_up = next((r for r in fitting[1:] if r.method != best.method), None)
            clear = None
            if runner_up is not None:
                gap = runner_up.mean_abs_error - best.mean_abs_error
                clear = gap > CLEAR_SIGMAS * math.hypot(best.stderr, runner_up.stderr)
            entry.update(
                best=_brief(best),
                runner_up=None if runner_up is None else _brief(runner_up),
                clear_winner=clear,
            )
        buckets.append(entry)
    front = []
    for row in sorted(rows, key=lambda r: (r.seconds_per_answer, r.mean_abs_error)):
        if not front or row.mean_abs_error < front[-1]["mean_abs_error"]:
            front.append(_brief(row))
    return {
        "metric": "mean |estimate - exact| (nats) per answer",
        "clear_winner_rule": f"runner-up minus best > {CLEAR_SIGMAS:g} * hypot(their stderr)",
        "buckets": buckets,
        "pareto_front": front,
    }


def _ints(text: str) -> list[int]:
    return [int(v) for v in str(text).split(",") if v.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=None, help="answers scored (default 100; smoke 10)")
    parser.add_argument("--seed", type=int, default=0, help="answers scored and estimators (guide: seed + 1)")
    parser.add_argument(
        "--particles", default=None, help="comma-separated K for elbo and importance (default 10,100,1000)"
    )
    parser.add_argument("--ais-steps", default=None, help="comma-separated AIS steps T (default 4,16,48)")
    parser.add_argument("--guide-steps", type=int, default=None, help="guide training steps (default 1000)")
    parser.add_argument(
        "--guide-answers", type=int, default=None, help="guide training answers (default 2000)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs; best time kept (default 3; smoke 1)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for tests")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads (default 1: the machine is shared; 0: torch's default)",
    )
    args = parser.parse_args(argv)
    smoke = args.smoke
    defaults = {
        "answers": 10 if smoke else 100,
        "particles": "10,100" if smoke else "10,100,1000",
        "ais_steps": "2,8" if smoke else "4,16,48",
        "guide_steps": 20 if smoke else 1000,
        "guide_answers": 200 if smoke else 2000,
        "repeats": 1 if smoke else 3,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.particles, args.ais_steps = _ints(args.particles), _ints(args.ais_steps)
    if args.answers < 1 or args.repeats < 1 or args.guide_steps < 1:
        parser.error("--answers, --repeats and --guide-steps must be positive")
    if not args.particles or not args.ais_steps or min(args.particles + args.ais_steps) < 1:
        parser.error("budgets must be positive integers")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    human = make_human("typist")
    guide, train_seconds = train_guide(human, args.guide_answers, args.guide_steps, args.seed + 1)
    log(f"guide: {args.guide_steps} steps in {train_seconds:.1f} s")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        human, guide = human.double(), guide.double()
        questions, answers = human.draw(args.answers, seed=args.seed)
        # AIS: one group per number of steps T at the default number of chains (its rows' budget is then T)
        groups = [(PARTICLE_METHODS, args.particles, None)] + [
            (AIS_METHODS, [DEFAULT_NUM_CHAINS], steps) for steps in args.ais_steps
        ]
        rows, exact_mean, result = [], None, None
        for methods, budgets, steps in groups:
            options = None if steps is None else {"ais": {"num_steps": steps}}
            group_rows, result = timed_compare(
                human, guide, questions, answers, methods, budgets, args.seed, args.repeats, result, options
            )
            if steps is not None:
                group_rows = [dataclasses.replace(row, budget=steps) for row in group_rows]
            rows += group_rows
            exact_mean = sum(r.log_prob for r in result.exact) / len(result.exact)
            for row in group_rows:
                log(
                    f"{row.method:<20} {row.budget:>5}  |err| {row.mean_abs_error:.4f}  bias {row.bias:+.4f}  "
                    f"{1e3 * row.seconds_per_answer:8.3f} ms/answer"
                )
    finally:
        torch.set_default_dtype(previous)
    return {
        "benchmark": "estimator_error",
        "human": "typist",
        "answers": len(answers),
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "dtype": "float64",
        "budgets": {
            "particles": args.particles,
            "ais_steps": args.ais_steps,
            "ais_num_chains": DEFAULT_NUM_CHAINS,
        },
        "guide": {
            "hidden_dim": GUIDE_HIDDEN,
            "train_steps": args.guide_steps,
            "train_answers": args.guide_answers,
            "train_seconds": train_seconds,
        },
        "exact_log_prob_mean": exact_mean,
        "rows": [row.to_dict() for row in rows],
        "recommendation": recommend(rows),
        "total_seconds": time.perf_counter() - start,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "pyro": pyro.__version__,
            "numpy": np.__version__,
            "retro": retro.__version__,
        },
    }


if __name__ == "__main__":
    print(json.dumps(main()))
