"""Streaming, resumable and sharded scoring: a SIGKILL at a random moment loses and duplicates nothing, a resume
with other settings is refused, and two processes (two ``torchrun`` launches rendezvousing as two nodes on
127.0.0.1) write the same bytes as one."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from distributed_runs import free_port

from retro.cli import main
from retro.humans import make_human
from retro.inference.results import summarize
from retro.inference.scoring import RunningSummary, record_from_dict

SCORE = "score --model human:typist --method importance --proposal prior --particles 16 --format jsonl"


@pytest.fixture(scope="module")
def answers_file(tmp_path_factory) -> Path:
    questions, answers = make_human("typist").draw(600, seed=4)  # 100 chunks: a kill lands mid-run
    path = tmp_path_factory.mktemp("scoring") / "answers.jsonl"
    path.write_text(
        "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in zip(questions, answers))
    )
    return path


@pytest.fixture(scope="module")
def reference(answers_file, tmp_path_factory) -> bytes:
    """One uninterrupted process, chunks of 6 answers."""
    out = tmp_path_factory.mktemp("reference") / "scores.jsonl"
    assert main(f"{SCORE} --data {answers_file} --batch-size 6 --out {out}".split()) == 0
    return out.read_bytes()


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_streamed_output_has_every_answer_once_in_order(reference, answers_file):
    rows = [json.loads(line) for line in reference.decode().splitlines()]
    given = [json.loads(line) for line in answers_file.read_text().splitlines()]
    assert [(r["question"], r["answer"]) for r in rows] == [(g["question"], g["answer"]) for g in given]
    running = RunningSummary()
    for row in rows:
        running.add(record_from_dict(row))
    exact = summarize([record_from_dict(row) for row in rows])
    assert running.summary().log_prob_mean == pytest.approx(exact.log_prob_mean, rel=1e-12)
    assert running.summary().stderr == pytest.approx(exact.stderr, rel=1e-9)


@pytest.mark.slow  # a process started and killed
def test_a_sigkill_at_a_random_moment_resumes_losing_and_duplicating_nothing(
    reference, answers_file, tmp_path
):
    out = tmp_path / "scores.jsonl"
    ledger = tmp_path / "scores.jsonl.partial.json"
    arguments = [*SCORE.split(), "--data", str(answers_file), "--batch-size", "6", "--out", str(out)]
    threshold = random.Random(11).choice([6, 18, 30, 42])  # answers finished before the kill is armed
    process = subprocess.Popen(
        [sys.executable, "-m", "retro", *arguments], env=_environment(), stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if json.loads(ledger.read_text())["answers"] >= threshold:
                break
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    time.sleep(random.Random(3).uniform(0, 0.2))  # somewhere inside the next chunk (or its write)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists()
    # The resume runs in this process (all it needs is on disk): another process start would cost more than the
    # scoring left to do.
    assert main([*arguments, "--resume"]) == 0
    assert out.read_bytes() == reference
    assert not ledger.exists() and not (tmp_path / "scores.jsonl.partial").exists()


def test_a_resume_with_other_settings_is_one_line(answers_file, tmp_path, capsys):
    out = tmp_path / "scores.jsonl"
    partial = tmp_path / "scores.jsonl.partial"
    partial.write_bytes(b"")
    (tmp_path / "scores.jsonl.partial.json").write_text(
        json.dumps(
            {
                "format": "retro-score-ledger/1",
                "answers": 0,
                "bytes": 0,
                "settings": {"model": "human:typist", "particles": 16},
            }
        )
    )
    code = main(f"{SCORE} --data {answers_file} --batch-size 6 --out {out} --resume".split())
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--resume with other settings than the interrupted run" in err and "batch" not in err.split("(")[0]
    assert main(f"{SCORE} --data {answers_file} --out {tmp_path / 'other.jsonl'} --resume".split()) == 2
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.slow  # two torchrun launches, four processes
def test_two_nodes_on_one_machine_write_the_bytes_of_one_process(reference, answers_file, tmp_path):
    """Two ``torchrun`` launches (``--nnodes 2``, one process each) rendezvous on 127.0.0.1 and share the chunks;
    rank 0 writes them in input order: the same bytes as one process."""
    out = tmp_path / "scores.jsonl"
    port = str(free_port())
    launches = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(node),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                port,
                "-m",
                "retro",
                *SCORE.split(),
                "--data",
                str(answers_file),
                "--batch-size",
                "6",
                "--out",
                str(out),
            ],
            env=_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in range(2)
    ]
    outputs = [launch.communicate(timeout=180)[0] for launch in launches]
    assert [launch.returncode for launch in launches] == [0, 0], outputs
    assert out.read_bytes() == reference
