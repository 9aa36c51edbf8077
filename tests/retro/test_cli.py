"""The command line, run in-process (one subprocess check of the installed entry point)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from retro.cli import main

SCORE_KEYS = {"question", "answer", "log_prob", "stderr", "ess", "khat", "method", "num_particles", "kind"}


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "latent"
    code = main(
        [
            "train",
            "--imitator",
            "latent",
            "--data",
            "human:arithmetic",
            "--n",
            "300",
            "--out",
            str(out),
            "--steps",
            "30",
            "--eval-every",
            "15",
            "--hidden-dim",
            "32",
            "--latent-dim",
            "2",
            "--max-length",
            "16",
            "--seed",
            "1",
        ]
    )
    assert code == 0
    return out


def run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_writes_checkpoint_and_history(trained_dir):
    assert (trained_dir / "weights.safetensors").is_file() and (trained_dir / "config.json").is_file()
    history = [json.loads(line) for line in (trained_dir / "history.jsonl").read_text().splitlines()]
    assert [row["step"] for row in history] == [15, 30]
    assert all(row["heldout_log_prob"] < 0 for row in history)


def test_train_refuses_to_overwrite(trained_dir, capsys):
    code, _, err = run(
        capsys, "train", "--imitator", "latent", "--data", "human:arithmetic", "--out", str(trained_dir)
    )
    assert code == 2 and "already holds a checkpoint" in err and err.count("\n") == 1


@pytest.mark.parametrize("proposal", ["guide", "prior", "mixture"])
def test_score_jsonl(trained_dir, capsys, proposal):
    code, out, _ = run(
        capsys,
        "score",
        "--model",
        str(trained_dir),
        "--data",
        "human:arithmetic",
        "--n",
        "6",
        "--method",
        "importance",
        "--proposal",
        proposal,
        "--particles",
        "30",
        "--format",
        "jsonl",
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 6
    assert all(SCORE_KEYS <= set(r) and r["method"] == f"importance[{proposal}]" for r in rows)


def test_score_formats_and_out_file(trained_dir, capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "score",
        "--model",
        str(trained_dir),
        "--data",
        "human:arithmetic",
        "--n",
        "3",
        "--method",
        "elbo",
        "--particles",
        "10",
        "--format",
        "table",
    )
    assert code == 0 and out.splitlines()[0].split()[:3] == ["question", "answer", "log_prob"]
    target = tmp_path / "scores.csv"
    code, out, _ = run(
        capsys,
        "score",
        "--model",
        str(trained_dir),
        "--data",
        "human:arithmetic",
        "--n",
        "3",
        "--format",
        "csv",
        "--particles",
        "10",
        "--out",
        str(target),
    )
    assert code == 0 and out == "" and target.read_text().startswith("question,answer,log_prob")


def test_score_human_exact(capsys):
    code, out, _ = run(
        capsys,
        "score",
        "--model",
        "human:typist",
        "--data",
        "human:typist",
        "--n",
        "4",
        "--method",
        "exact",
        "--format",
        "jsonl",
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and all(r["kind"] == "exact" and r["stderr"] == 0.0 for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["score", "--model", "missing-dir", "--data", "human:typist"], "no checkpoint directory"),
        (["score", "--model", "human:nobody", "--data", "human:typist"], "unknown human 'nobody'"),
        (
            ["score", "--model", "human:typist", "--data", "human:typist", "--method", "elbo"],
            "no trained guide",
        ),
        (
            ["score", "--model", "human:typist", "--data", "human:typist", "--proposal", "guide"],
            "no trained guide",
        ),
        (["train", "--imitator", "nope", "--data", "human:typist", "--out", "x"], "unknown imitator 'nope'"),
    ],
)
def test_bad_input_is_one_line(capsys, args, message):
    code, _, err = run(capsys, *args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_exact_on_multidimensional_latent_is_explained(trained_dir, capsys):
    code, _, err = run(
        capsys, "score", "--model", str(trained_dir), "--data", "human:arithmetic", "--method", "exact"
    )
    assert code == 2 and "exact log p is not available" in err


def test_corrupt_checkpoint(trained_dir, capsys, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((trained_dir / "config.json").read_text())
    (broken / "weights.safetensors").write_bytes((trained_dir / "weights.safetensors").read_bytes()[:100])
    code, _, err = run(capsys, "score", "--model", str(broken), "--data", "human:arithmetic")
    assert code == 2 and "corrupt" in err


def test_sample_and_listings(trained_dir, capsys):
    code, out, _ = run(
        capsys,
        "sample",
        "--model",
        str(trained_dir),
        "--questions",
        "1+1",
        "2+2",
        "--num-samples",
        "2",
        "--format",
        "jsonl",
    )
    assert code == 0 and len(out.splitlines()) == 4
    assert run(capsys, "humans")[1].split()[0] == "arithmetic"
    assert {line.split()[0] for line in run(capsys, "imitators")[1].splitlines()} == {
        "latent",
        "mixture",
        "seq2seq",
    }


def test_demo_smoke(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "--smoke", "--out", str(tmp_path / "demo"))
    assert code == 0
    table = json.loads((tmp_path / "demo" / "table.json").read_text())
    assert [row["method"] for row in table["rows"]] == [
        "exact",
        "elbo",
        "importance[guide]",
        "importance[prior]",
        "importance[mixture]",
    ]
    assert (tmp_path / "demo" / "estimators.png").stat().st_size > 10_000
    assert "mean_abs_error" in out


def test_entry_point_installed():
    result = subprocess.run([sys.executable, "-m", "retro.cli", "humans"], capture_output=True, text=True)
    assert result.returncode == 0 and "typist" in result.stdout


def test_score_table_ends_with_summary_and_max_rows_bounds_nothing_visible(trained_dir, capsys):
    code, out, _ = run(
        capsys,
        "score",
        "--model",
        str(trained_dir),
        "--data",
        "human:arithmetic",
        "--n",
        "5",
        "--method",
        "importance",
        "--proposal",
        "prior",
        "--particles",
        "40",
        "--max-rows",
        "16",
    )
    assert code == 0 and out.splitlines()[-1].startswith("importance[prior]: mean log p")
