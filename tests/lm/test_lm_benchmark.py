"""``benchmarks/lm_scoring.py --smoke`` runs and agrees with lm-evaluation-harness (when it is installed)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="needs the [lm] extra: pip install 'retro-imitators[lm]'")

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_lm_scoring_smoke():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import lm_scoring
    finally:
        sys.path.remove(str(BENCHMARKS))
    report = lm_scoring.main(["--smoke"])
    json.dumps(report)  # one JSON object
    assert report["benchmark"] == "lm_scoring" and report["pairs"] == 8
    assert report["record_minus_terms_max_abs"] < 1e-4  # a record is the answer's tokens plus the EOS term
    assert report["eos_term_mean"] < 0
    assert math.isfinite(report["ratio_persona_vs_8_lm"]) and report["ratio_persona_vs_8_lm"] > 0
    if importlib.util.find_spec("lm_eval") is None:
        assert report["lm_eval"].startswith("skipped: lm-evaluation-harness is not installed")
        pytest.skip("lm-evaluation-harness is not installed: the comparison with it was skipped")
    assert report["max_abs_diff_nats"] <= 1e-4  # the same numbers as lm-evaluation-harness's loglikelihood
    assert math.isfinite(report["ratio_retro_vs_lm_eval"]) and report["ratio_retro_vs_lm_eval"] > 0
