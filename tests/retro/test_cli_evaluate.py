"""``retro evaluate``: one JSON object of held-out log p, perplexity and the 1-best error rates."""

from __future__ import annotations

import json
import math

from cli_run import run_cli as run

from retro.data import load_pairs
from retro.humans import make_human
from retro.inference import exact

KEYS = {
    "log_prob_mean",
    "log_prob_stderr",
    "num_answers",
    "num_questions",
    "perplexity_per_token",
    "wer",
    "per",
    "beam",
    "particles",
}


def test_evaluate_the_human_against_its_own_answers(capsys):
    code, out, _ = run(
        capsys, "evaluate --model human:arithmetic --data human:arithmetic --n 60 --beam 4 --seed 3"
    )
    assert code == 0 and len(out.splitlines()) == 1
    result = json.loads(out)
    assert KEYS <= set(result) and result["beam"] == 4 and result["particles"] == 500
    pairs = load_pairs("human:arithmetic", n=60, seed=3)
    assert result["num_answers"] == 60 and result["num_questions"] == len(set(pairs.questions))
    # No estimation error: the human's log p is exact (its style latent is summed out).
    truth = [r.log_prob for r in exact(make_human("arithmetic"), pairs.questions, pairs.answers).records]
    assert math.isclose(result["log_prob_mean"], sum(truth) / 60, rel_tol=1e-12)
    tokens = sum(len(a.encode()) + 1 for a in pairs.answers)
    assert math.isclose(result["perplexity_per_token"], math.exp(-sum(truth) / tokens), rel_tol=1e-9)
    words = sum(len(a.split()) + 1 for a in pairs.answers)
    assert math.isclose(result["perplexity_per_word"], math.exp(-sum(truth) / words), rel_tol=1e-9)
    assert 0 < result["log_prob_stderr"] < 1
    # Its 1-best is the terse sum; its own answers are often verbose or typo'd (one whitespace token each).
    assert 0.1 < result["wer"] < 0.7 and 0.1 < result["per"] < 0.7


def test_evaluate_table_and_errors(capsys):
    code, out, _ = run(
        capsys, "evaluate --model human:typist --data human:typist --n 8 --particles 20 --format table"
    )
    assert code == 0 and out.splitlines()[0].split() == ["metric", "value"] and "perplexity_per_token" in out
    code, _, err = run(capsys, "evaluate --model human:typist --data human:typist --n 8 --beam 0")
    assert code == 2 and "--beam must be >= 1" in err and err.count("\n") == 1
