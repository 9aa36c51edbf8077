"""Data-parallel training on torch.distributed (2 CPU processes, gloo): the same parameters as one process with
the same global minibatch, an exact resume, and the errors of a run that cannot be shared or joined."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
from distributed_runs import CASES, TESTS, free_port, rank_environment, run_case
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
def two_rank_run(tmp_path_factory):
    """Every case trained by 2 processes joined through the torchrun environment (started once per module)."""
    out = tmp_path_factory.mktemp("data_parallel")
    port = free_port()
    script = str(TESTS / "distributed_runs.py")
    ranks = [
        subprocess.Popen(
            [sys.executable, script, "train", str(out)],
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


@pytest.mark.parametrize("case", CASES)
def test_two_ranks_match_one_rank_with_the_same_global_batch(two_rank_run, case):
    """Global batch 8 cut into 2 slices: one slice per rank on 2 ranks, both slices on 1 rank; after 20 steps
    the parameters agree to float64 summation order (the random streams are keyed by seed, step and slice)."""
    one_rank = run_case(case, SINGLE)
    two_ranks = load_file(str(two_rank_run / f"{case}.safetensors"))
    assert _relative_difference(two_ranks, one_rank) <= 1e-5


def test_resume_on_two_ranks_is_bit_for_bit(two_rank_run):
    straight = load_file(str(two_rank_run / "straight.safetensors"))
    resumed = load_file(str(two_rank_run / "resumed.safetensors"))
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert (two_rank_run / "rank1.done").exists()


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
