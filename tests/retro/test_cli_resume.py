"""``retro train`` survives real use: checkpoints, SIGKILL at any moment, --resume, early stopping, NaN, corruption."""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retro.checkpoint import weights_path
from retro.cli import main

TRAIN = (
    "train --imitator latent --data human:arithmetic --n 400 --hidden-dim 16 --latent-dim 2 --max-length 16 "
    "--eval-every 5 --checkpoint-every 5 --seed 3"
)


def _history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_losing_at_most_one_interval(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "retro.cli", *shlex.split(TRAIN), "--out", str(out), "--steps", "100000"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = out / "state" / "config.json"
    try:
        deadline = time.monotonic() + 300  # a loaded machine may take minutes to start and reach step 5
        while not state.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert state.exists(), (
            process.stderr.read().decode()[-2000:] if process.poll() is not None else "no state"
        )
        time.sleep(random.Random(0).uniform(0.3, 1.5))  # then kill at an arbitrary moment
    finally:  # killed whatever happened: a failed check must not leave a 100,000-step run behind
        process.send_signal(signal.SIGKILL)
        process.wait()
    evaluated = max(row["step"] for row in _history(out))  # how far the killed run got (evaluated every 5)
    resumed_from = json.loads(state.read_text())["step"]
    assert evaluated - resumed_from <= 5  # at most one checkpoint interval is lost
    target = resumed_from + 10
    done = subprocess.run(
        [sys.executable, "-m", "retro.cli", "train", "--resume", str(out), "--steps", str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["resumed_from_step"] == resumed_from and summary["steps"] == target
    steps = [row["step"] for row in _history(out)]
    assert steps == list(range(5, target + 1, 5))  # the log continues without gaps or repeats


def test_resume_errors_are_one_line(tmp_path, capsys):
    assert main(shlex.split(f"{TRAIN} --out {tmp_path / 'a'} --steps 10")) == 0
    capsys.readouterr()
    state = tmp_path / "a" / "state"
    weights = weights_path(state)
    weights.write_bytes(weights.read_bytes()[:64])  # a truncated training state
    assert main(["train", "--resume", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "is corrupt" in err and err.count("\n") == 1
    assert main(["train", "--resume", str(tmp_path / "absent")]) == 2
    assert "no checkpoint directory" in capsys.readouterr().err
    assert main(["train", "--data", "human:arithmetic"]) == 2
    assert "give --imitator, --out (or --resume DIR)" in capsys.readouterr().err
    # The best model written next to the state is untouched by the broken state.
    assert (
        main(shlex.split(f"score --model {tmp_path / 'a'} --data human:arithmetic --n 5 --particles 5")) == 0
    )


def test_early_stopping_from_the_cli(tmp_path, capsys):
    out = tmp_path / "b"
    command = TRAIN.replace("--imitator latent", "--imitator seq2seq").replace("--latent-dim 2 ", "")
    command += f" --out {out} --steps 500 --lr 0 --patience 2"
    assert main(shlex.split(command)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["stopped_early"] and summary["steps"] == 15


def test_a_minibatch_larger_than_the_training_data_resumes_as_it_would_have_run(tmp_path, capsys):
    tiny = (
        "train --imitator seq2seq --data human:typist --n 40 --hidden-dim 8 --max-length 24 --eval-every 2 "
        "--lr-schedule constant"
    )
    assert main(shlex.split(f"{tiny} --steps 4 --out {tmp_path / 'whole'}")) == 0  # 36 answers, batch 64
    assert main(shlex.split(f"{tiny} --steps 2 --out {tmp_path / 'part'}")) == 0
    assert main(shlex.split(f"train --resume {tmp_path / 'part'} --steps 4")) == 0
    capsys.readouterr()
    whole, part = _history(tmp_path / "whole"), _history(tmp_path / "part")
    assert [row["step"] for row in part] == [2, 4]
    assert part[-1]["loss"] == whole[-1]["loss"]
