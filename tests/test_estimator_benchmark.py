"""``benchmarks/estimator_error.py --smoke`` runs end to end and prints one JSON object with sane numbers."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METHODS = (
    "elbo",
    "importance[prior]",
    "importance[guide]",
    "importance[mixture]",
    "ais[prior]",
    "ais[guide]",
)

pytestmark = pytest.mark.slow  # see pyproject.toml: CI runs it, `-m "not slow"` skips it


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_estimator_error_smoke():
    script = ROOT / "benchmarks" / "estimator_error.py"
    done = subprocess.run(
        [sys.executable, str(script), "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)  # exactly one JSON object: anything else on stdout fails here
    assert report["benchmark"] == "estimator_error"
    assert report["human"] == "typist"
    assert report["answers"] == 10
    assert _finite(report["exact_log_prob_mean"])

    rows = report["rows"]
    assert {row["method"] for row in rows} == set(METHODS)
    for row in rows:
        assert row["num_answers"] == 10, row
        for key in ("stderr", "mean_abs_error", "seconds", "seconds_per_answer", "budget"):
            assert _positive_finite(row[key]), (row["method"], row["budget"], key, row[key])
        for key in ("log_prob_mean", "bias"):
            assert _finite(row[key]), (row["method"], row["budget"], key, row[key])
        assert abs(row["bias"]) <= row["mean_abs_error"] + 1e-12  # |mean e| <= mean |e|
        # k-hat needs >= 25 draws (psis.MIN_DRAWS): None below that, a finite number above
        assert row["khat_mean"] is None or _finite(row["khat_mean"]), row
    for method in METHODS:
        assert len([r for r in rows if r["method"] == method]) == 2, method  # both smoke budgets

    # More particles, smaller error. Each row's `stderr` is the Monte Carlo standard error of its mean estimate,
    # sqrt(sum_i se_i^2) / N over the N answers. It also bounds the standard error of the row's mean |error|:
    # e_i = estimate_i - exact_i has standard deviation ~se_i (delta method), and |.| is 1-Lipschitz, so
    # Var|e_i| <= Var e_i; averaging N independent answers gives sd(mean |e|) <= sqrt(sum_i se_i^2) / N. The two
    # budgets draw their particles separately (different K, so different shapes of random numbers), so we treat
    # the two means as independent: the difference has standard error hypot(stderr_small, stderr_large).
    # A 4-sigma allowance fails by chance with probability < 1e-4 even if the true mean |errors| were equal,
    # and in fact the larger budget's true error is well below the smaller's (both bias and noise shrink).
    prior = sorted((r for r in rows if r["method"] == "importance[prior]"), key=lambda r: r["budget"])
    small, large = prior[0], prior[-1]
    assert large["budget"] > small["budget"]
    allowance = 4 * math.hypot(small["stderr"], large["stderr"])
    assert large["mean_abs_error"] <= small["mean_abs_error"] + allowance, (small, large)

    recommendation = report["recommendation"]
    buckets = recommendation["buckets"]
    assert [b["bucket"] for b in buckets][-1] == "any"
    overall = min(rows, key=lambda r: r["mean_abs_error"])
    assert buckets[-1]["best"]["method"] == overall["method"]
    assert buckets[-1]["best"]["budget"] == overall["budget"]
    for bucket in buckets:
        limit = bucket["max_seconds_per_answer"]
        fitting = [r for r in rows if limit is None or r["seconds_per_answer"] < limit]
        if not fitting:
            assert bucket["best"] is None
            continue
        best = bucket["best"]
        assert best["seconds_per_answer"] < (limit if limit is not None else math.inf)
        assert best["mean_abs_error"] == min(r["mean_abs_error"] for r in fitting)
    front = recommendation["pareto_front"]
    assert front and all(a["mean_abs_error"] > b["mean_abs_error"] for a, b in zip(front, front[1:]))
