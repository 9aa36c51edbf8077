"""torch.distributed on 2 CPU processes (gloo), started once for every check here (``distributed_runs.main``).

Data-parallel training: the same parameters as one process with the same global minibatch, an exact resume, and
the errors of a run that cannot be shared or joined. Sharded scoring: scores that do not depend on how the work was
cut (1 rank vs 2 ranks, batch sizes 1, 7 and 64, two ``max_rows`` settings, for importance, elbo and ais). Each
answer's draws are keyed by (seed, its index in the input): float64 log p agree to 1e-10 nats, float32 to 1e-4,
and the JSONL is byte-identical wherever only the number of ranks changes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch
from distributed_runs import (
    CASES,
    SCORING_BATCHES,
    SCORING_MAX_ROWS,
    SCORING_METHODS,
    SCORING_ON_TWO_RANKS,
    TESTS,
    free_port,
    rank_environment,
    run_case,
    sharded_evaluation,
    sharded_scores,
)
from safetensors.torch import load_file

from retro.distributed import SINGLE, World, join_from_environment
from retro.errors import RetroError
from retro.inference.train import TrainConfig, train
from retro.models import make_imitator


def _relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    x = torch.cat([a[k].double().flatten() for k in sorted(a)])
    y = torch.cat([b[k].double().flatten() for k in sorted(b)])
    return ((x - y).norm() / y.norm()).item()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Every training and scoring case run by 2 processes joined through the torchrun environment (one launch)."""
    out = tmp_path_factory.mktemp("two_ranks")
    port = free_port()
    ranks = [
        subprocess.Popen(
            [sys.executable, str(TESTS / "distributed_runs.py"), str(out)],
            env=rank_environment(rank, 2, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [rank.communicate(timeout=240)[0] for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0, 0], outputs
    assert (out / "rank0.done").exists() and (out / "rank1.done").exists()
    return out


# -- data-parallel training ------------------------------------------------------------------------------------------


@pytest.mark.slow  # the 2-process launch
@pytest.mark.parametrize("case", CASES)
def test_two_ranks_match_one_rank_with_the_same_global_batch(two_ranks, case):
    """Global batch 8 cut into 2 slices: one slice per rank on 2 ranks, both slices on 1 rank; after 20 steps
    the parameters agree to float64 summation order (the random streams are keyed by seed, step and slice)."""
    one_rank = run_case(case, SINGLE)
    two = load_file(str(two_ranks / f"{case}.safetensors"))
    assert _relative_difference(two, one_rank) <= 1e-5


@pytest.mark.slow  # the 2-process launch
def test_resume_on_two_ranks_is_bit_for_bit(two_ranks):
    straight = load_file(str(two_ranks / "straight.safetensors"))
    resumed = load_file(str(two_ranks / "resumed.safetensors"))
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_a_world_size_that_does_not_divide_the_batch_is_one_line():
    imitator = make_imitator("seq2seq", max_length=8, hidden_dim=8)
    config = TrainConfig(steps=1, batch_size=10, progress=False)
    with pytest.raises(
        RetroError, match=r"^training: the batch size 10 is not divisible into 3 equal slices"
    ):
        train(imitator, ["1+1"] * 20, ["2"] * 20, config=config, world=World(rank=0, size=3))
    with pytest.raises(RetroError, match="4 slices per minibatch cannot be shared by 3 processes"):
        train(imitator, ["1+1"] * 20, ["2"] * 20, config=TrainConfig(slices=4), world=World(rank=0, size=3))


def test_a_rank_that_cannot_reach_the_rendezvous_fails_within_seconds(monkeypatch):
    port = free_port()  # nobody serves it
    for name, value in rank_environment(1, 2, port).items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    with pytest.raises(
        RetroError, match=rf"^rank 1 of 2 could not join the distributed run at 127.0.0.1:{port}"
    ):
        join_from_environment(join_timeout_s=2)
    assert time.monotonic() - started < 15


# -- sharded scoring -------------------------------------------------------------------------------------------------


def _log_probs(text: str) -> list[tuple[str, str, float]]:
    rows = [json.loads(line) for line in text.splitlines()]
    return [(r["question"], r["answer"], r["log_prob"]) for r in rows]


@pytest.mark.slow  # the 2-process launch
@pytest.mark.parametrize("method", SCORING_METHODS)
def test_one_and_two_ranks_any_batch_and_max_rows_give_the_same_draws(two_ranks, method):
    reference = None
    for batch in SCORING_BATCHES:
        for max_rows in SCORING_MAX_ROWS:
            one = sharded_scores(method, batch, max_rows, SINGLE)
            if (batch, max_rows) in SCORING_ON_TWO_RANKS:
                two = (two_ranks / f"{method}-{batch}-{max_rows}.jsonl").read_text()
                assert one == two, f"{method}: 1 and 2 ranks differ at batch {batch}, max_rows {max_rows}"
            scores = _log_probs(one)
            reference = reference or scores
            assert [s[:2] for s in scores] == [s[:2] for s in reference]  # same answers, same order
            assert max(abs(a[2] - b[2]) for a, b in zip(scores, reference)) <= 1e-10


@pytest.mark.parametrize("method", SCORING_METHODS)
def test_float32_scores_agree_across_batch_sizes_to_1e_4(method):
    first, *others = [
        _log_probs(sharded_scores(method, batch, max_rows, SINGLE, dtype=torch.float32))
        for batch, max_rows in ((1, 4096), (7, 6), (64, 4096))
    ]
    for scores in others:
        assert max(abs(a[2] - b[2]) for a, b in zip(scores, first)) <= 1e-4


@pytest.mark.slow  # the 2-process launch
def test_evaluate_on_two_ranks_gives_the_metrics_of_one(two_ranks):
    """``retro evaluate``'s library function: answers scored and questions decoded by 2 ranks in chunks of 5 give
    the metrics of one process, to the bit."""
    one = sharded_evaluation(SINGLE)
    assert one["num_answers"] == 12
    assert (two_ranks / "evaluate.json").read_text() == json.dumps(one)
