"""Scores that do not depend on how the work was cut: 1 rank vs 2 ranks (gloo), batch sizes 1, 7 and 64, two
``max_rows`` settings, for importance, elbo and ais. Each answer's draws are keyed by (seed, its index in the
input): float64 log p agree to 1e-10 nats, float32 to 1e-4, and the JSONL is byte-identical wherever only the
number of ranks changes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from distributed_runs import (
    SCORING_BATCHES,
    SCORING_MAX_ROWS,
    SCORING_METHODS,
    SCORING_ON_TWO_RANKS,
    TESTS,
    free_port,
    rank_environment,
    sharded_scores,
)

from retro.distributed import SINGLE


@pytest.fixture(scope="module")
def two_rank_scores(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded_scoring")
    port = free_port()
    ranks = [
        subprocess.Popen(
            [sys.executable, str(TESTS / "distributed_runs.py"), "score", str(out)],
            env=rank_environment(rank, 2, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [rank.communicate(timeout=240)[0] for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0, 0], outputs
    return out


def _log_probs(text: str) -> list[tuple[str, str, float]]:
    rows = [json.loads(line) for line in text.splitlines()]
    return [(r["question"], r["answer"], r["log_prob"]) for r in rows]


@pytest.mark.parametrize("method", SCORING_METHODS)
def test_one_and_two_ranks_any_batch_and_max_rows_give_the_same_draws(two_rank_scores, method):
    reference = None
    for batch in SCORING_BATCHES:
        for max_rows in SCORING_MAX_ROWS:
            one = sharded_scores(method, batch, max_rows, SINGLE)
            if (batch, max_rows) in SCORING_ON_TWO_RANKS:
                two = (two_rank_scores / f"{method}-{batch}-{max_rows}.jsonl").read_text()
                assert one == two, f"{method}: 1 and 2 ranks differ at batch {batch}, max_rows {max_rows}"
            scores = _log_probs(one)
            reference = reference or scores
            assert [s[:2] for s in scores] == [s[:2] for s in reference]  # same answers, same order
            assert max(abs(a[2] - b[2]) for a, b in zip(scores, reference)) <= 1e-10


@pytest.mark.parametrize("method", SCORING_METHODS)
def test_float32_scores_agree_across_batch_sizes_to_1e_4(method):
    first, *others = [
        _log_probs(sharded_scores(method, batch, max_rows, SINGLE, dtype=torch.float32))
        for batch, max_rows in ((1, 4096), (7, 5), (64, 4096))
    ]
    for scores in others:
        assert max(abs(a[2] - b[2]) for a, b in zip(scores, first)) <= 1e-4
