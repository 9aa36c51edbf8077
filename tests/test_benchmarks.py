"""The benchmarks run end to end (smoke sizes) and print one JSON object with sane numbers.

The training benchmarks share their timer, ``benchmarks/rounds.py``, which runs with them here.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # see pyproject.toml: CI runs it, `-m "not slow"` skips it

ROOT = Path(__file__).resolve().parents[1]

TIMES = (
    "retro_s_per_answer",
    "torch_s_per_answer",
    "pyro_importance_s_per_answer",
    "renyi_s_per_answer",
    "retro_log_weights_s_per_answer",
    "renyi_chunked_s_per_answer",
    "torch_padded_s_per_answer",
)
RATIOS = (
    "ratio_retro_vs_torch",
    "ratio_pyro_importance_vs_retro",
    "ratio_renyi_vs_retro",
    "ratio_retro_log_weights_vs_torch",
    "ratio_renyi_chunked_vs_retro",
    "ratio_torch_padded_vs_torch",
    "ratio_retro_vs_torch_cpu",
)


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _smoke_report(name: str) -> dict:
    """Run ``benchmarks/NAME.py --smoke``; its stdout must be exactly one JSON object."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


def test_importance_speed_smoke():
    report = _smoke_report("importance_speed")
    assert report["benchmark"] == "importance_speed"
    assert report["answers"] == 8
    assert [row["K"] for row in report["results"]] == [16, 64]
    for row in report["results"]:
        for key in TIMES + RATIOS:
            assert _positive_finite(row[key]), (row["K"], key, row[key])
        for key, value in row["cpu_s_per_answer"].items():
            assert _positive_finite(value), (row["K"], key, value)
        assert math.isfinite(row["max_abs_diff"]) and row["max_abs_diff"] >= 0
        assert math.isfinite(row["mean_log_prob_retro"]) and math.isfinite(row["mean_log_prob_torch"])
        # retro and the hand-written estimator draw different random numbers, so an answer "agrees" when
        # the two estimates are within 5 combined standard errors. If the delta-method standard errors were
        # exact, a miss would have probability ~6e-7 per answer; the full-size check allows up to 10% of
        # misses, for standard errors underestimated by skewed weights at small K. With 8 answers, 90% would
        # mean no miss at all (a 57% chance of failing at a 10% miss rate), while >= 0.75 (at most 2 misses
        # of 8) fails with probability P(Binomial(8, 0.1) >= 3) ~ 4% even at that worst tolerated rate, and
        # essentially never for a correct estimator; a wrong one (e.g. a missing log-prior term, several nats
        # per answer) misses on nearly every answer.
        assert row["agreement_fraction"] >= 0.75, row
        assert row["pyro_importance_agreement_fraction"] >= 0.5, row  # 2 answers: at most one miss
        assert row["renyi_agreement_fraction"] >= 0.75, row


def test_adversarial_speed_smoke():
    report = _smoke_report("adversarial_speed")
    assert report["benchmark"] == "adversarial_speed" and report["steps"] == 3
    for key in (
        "retro_answers_per_s",
        "torch_answers_per_s",
        "retrodiction_answers_per_s",
        "ratio_retro_vs_torch",
    ):
        assert _positive_finite(report[key]), (key, report[key])


def test_training_speed_smoke():
    report = _smoke_report("training_speed")
    assert report["benchmark"] == "training_speed" and report["steps"] == 3
    for key in (
        "retro_answers_per_s",
        "retro_bucketed_answers_per_s",
        "retro_ngram_guide_answers_per_s",
        "seq2seq_answers_per_s",
        "torch_answers_per_s",
        "ratio_retro_vs_torch",
        "speedup_length_buckets",
        "speedup_ngram_guide",
        "latent_over_seq2seq_gru_guide",
        "latent_over_seq2seq_ngram_guide",
    ):
        assert _positive_finite(report[key]), (key, report[key])


def test_scaling_smoke():
    """Two processes (gloo) against one, for scoring and training: the figures exist (the ratios themselves are
    measured on an idle machine, see the README)."""
    report = _smoke_report("scaling")
    assert report["benchmark"] == "scaling" and report["smoke"] is True
    for key in (
        "scoring_ratio_2_vs_1",
        "training_ratio_2_vs_1",
        "training_ratio_2_vs_1_per_process_batch",
        "scoring_cpu_seconds_per_process_ratio_1_vs_2",
        "training_cpu_seconds_per_process_ratio_1_vs_2",
    ):
        assert _positive_finite(report[key]), (key, report[key])
    assert len(report["load_average_before"]) == 3


def test_scoring_memory_smoke():
    report = _smoke_report("scoring_memory")
    assert report["benchmark"] == "scoring_memory"
    (row,) = report["results"]
    assert row["written"] == row["answers"] == 300 and _positive_finite(row["peak_rss_mb"])
