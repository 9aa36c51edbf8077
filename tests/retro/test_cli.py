"""The command line, run in-process (one subprocess check of the installed entry point)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
from cli_run import run_cli as run

from optional import needs_pyapproxmc
from retro.checkpoint import weights_path
from retro.cli import main

SCORE_KEYS = {"question", "answer", "log_prob", "stderr", "ess", "khat", "method", "num_particles", "kind"}


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "latent"
    command = (
        f"train --imitator latent --data human:arithmetic --n 300 --out {out} --steps 30 --eval-every 15 "
        "--hidden-dim 32 --latent-dim 2 --max-length 16 --seed 1"
    )
    assert main(shlex.split(command)) == 0
    return out


def test_train_writes_checkpoint_and_history(trained_dir):
    assert weights_path(trained_dir).is_file() and (trained_dir / "config.json").is_file()
    history = [json.loads(line) for line in (trained_dir / "history.jsonl").read_text().splitlines()]
    assert [row["step"] for row in history] == [15, 30]
    assert all(row["heldout_log_prob"] < 0 for row in history)


def test_train_refuses_to_overwrite(trained_dir, capsys):
    code, _, err = run(capsys, f"train --imitator latent --data human:arithmetic --out {trained_dir}")
    assert code == 2 and "already holds config.json" in err and err.count("\n") == 1


@pytest.mark.parametrize("proposal", ["guide", "prior", "mixture"])
def test_score_jsonl(trained_dir, capsys, proposal):
    code, out, _ = run(
        capsys,
        f"score --model {trained_dir} --data human:arithmetic --n 6 --method importance --proposal {proposal} "
        "--particles 30 --format jsonl",
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 6
    assert all(SCORE_KEYS <= set(r) and r["method"] == f"importance[{proposal}]" for r in rows)


def test_score_formats_and_out_file(trained_dir, capsys, tmp_path):
    base = f"score --model {trained_dir} --data human:arithmetic --n 3 --particles 10"
    code, out, _ = run(capsys, f"{base} --method elbo --format table")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["question", "answer", "log_prob"]
    assert out.splitlines()[-1].startswith("elbo: mean log p")
    target = tmp_path / "scores.csv"
    code, out, err = run(capsys, f"{base} --format csv --out {target}")
    assert code == 0 and out == "" and target.read_text().startswith("question,answer,log_prob")
    assert "mean log p" in err


def test_score_max_rows_bounds_memory_not_results(trained_dir, capsys):
    base = f"score --model {trained_dir} --data human:arithmetic --n 5 --method importance --proposal prior"
    code, out, _ = run(capsys, f"{base} --particles 40 --max-rows 16 --format jsonl")
    assert code == 0 and all(json.loads(line)["num_particles"] == 40 for line in out.splitlines())


def test_score_human_exact(capsys):
    code, out, _ = run(
        capsys, "score --model human:typist --data human:typist --n 4 --method exact --format jsonl"
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and all(r["kind"] == "exact" and r["stderr"] == 0.0 for r in rows)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("score --model missing-dir --data human:typist", "no checkpoint directory"),
        ("score --model human:nobody --data human:typist", "unknown human 'nobody'"),
        ("score --model human:typist --data human:typist --method elbo", "no trained guide"),
        ("score --model human:typist --data human:typist --proposal guide", "no trained guide"),
        ("score --model human:typist --data human:typist --particles 0", "--particles must be >= 1"),
        ("train --imitator nope --data human:typist --out x", "unknown imitator 'nope'"),
    ],
)
def test_bad_input_is_one_line(capsys, command, message):
    code, _, err = run(capsys, command)
    assert code == 2 and message in err and err.count("\n") == 1


def test_exact_on_multidimensional_latent_is_explained(trained_dir, capsys):
    code, _, err = run(capsys, f"score --model {trained_dir} --data human:arithmetic --method exact")
    assert code == 2 and "exact log p is not available" in err


def test_corrupt_checkpoint(trained_dir, capsys, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((trained_dir / "config.json").read_text())
    (broken / weights_path(trained_dir).name).write_bytes(weights_path(trained_dir).read_bytes()[:100])
    code, _, err = run(capsys, f"score --model {broken} --data human:arithmetic")
    assert code == 2 and "corrupt" in err


def test_sample_and_listings(trained_dir, capsys):
    code, out, _ = run(
        capsys, f"sample --model {trained_dir} --questions 1+1 2+2 --num-samples 2 --format jsonl"
    )
    assert code == 0 and len(out.splitlines()) == 4
    assert run(capsys, "humans")[1].split()[0] == "arithmetic"
    assert {line.split()[0] for line in run(capsys, "imitators")[1].splitlines()} == {
        "ensemble",
        "latent",
        "mixture",
        "seq2seq",
        "lm",
        "lm-persona",
        "lm-soft-prompt",
    }


def test_demo_smoke(tmp_path, capsys):
    """One demo run (the costly part), into a folder holding an earlier run's outputs: refused before any work
    without --overwrite, nothing changed on disk; with it, both files replaced."""
    folder = tmp_path / "demo"
    folder.mkdir()

    def on_disk():
        return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}

    (folder / "estimators.png").write_bytes(b"an earlier run's plot")
    for earlier in ({"estimators.png"}, {"estimators.png", "table.json"}):
        before = on_disk()
        assert set(before) == earlier
        code, _, err = run(capsys, f"demo --smoke --out {folder}")
        assert code == 2 and "already exists; pass --overwrite to replace it" in err and "Training" not in err
        assert on_disk() == before  # nothing written, nothing left behind
        (folder / "table.json").write_text("an earlier run's table")
    code, out, _ = run(capsys, f"demo --smoke --out {folder} --overwrite")
    assert code == 0 and sorted(p.name for p in folder.iterdir()) == ["estimators.png", "table.json"]
    table = json.loads((folder / "table.json").read_text())
    methods = [row["method"] for row in table["rows"]]
    assert methods == [
        "exact",
        "elbo",
        "importance[guide]",
        "importance[prior]",
        "importance[mixture]",
        "marginal[guide]",
        "marginal[prior]",
        "marginal[mixture]",
        "ais[guide]",
    ]
    plot = (folder / "estimators.png").read_bytes()
    assert plot.startswith(b"\x89PNG") and len(plot) > 10_000
    assert "mean_abs_error" in out


def test_entry_point_installed():
    result = subprocess.run([sys.executable, "-m", "retro.cli", "humans"], capture_output=True, text=True)
    assert result.returncode == 0 and "typist" in result.stdout


def test_score_exports_inference_data(trained_dir, capsys, tmp_path):
    import arviz as az

    target = tmp_path / "weights.nc"
    code, _, _ = run(
        capsys, f"score --model {trained_dir} --data human:arithmetic --n 4 --particles 50 --out {target}"
    )
    idata = az.from_netcdf(target)
    log_weights = idata.sample_stats.log_weights.stack(__sample__=("chain", "draw"))
    _, khat = az.psislw(log_weights)
    assert code == 0 and log_weights.shape == (4, 50)
    assert abs(khat.values - idata.constant_data.khat.values).max() < 1e-12
    code, _, err = run(
        capsys,
        f"score --model human:typist --data human:typist --n 3 --method exact --out {target} --overwrite",
    )
    assert code == 2 and "drew no importance weights" in err and target.exists()  # the previous file is kept


def test_compare_json_and_plot(capsys, tmp_path):
    plot = tmp_path / "compare.png"
    code, out, _ = run(
        capsys,
        "compare --model human:typist --data human:typist --n 8 --methods importance,ais --budgets 5,20 "
        f"--format json --plot {plot}",
    )
    result = json.loads(out)
    assert code == 0 and result["exact_available"] and len(result["rows"]) == 4
    assert {"method", "budget", "log_prob_mean", "stderr", "bias", "seconds"} <= set(result["rows"][0])
    assert plot.stat().st_size > 5_000


@pytest.mark.slow
def test_figures_are_not_overwritten_without_overwrite(capsys, tmp_path):
    # compare --plot and report --png refuse an existing file before any work, and replace it only when told
    for command, flag in (
        ("compare --methods importance --budgets 5", "--plot"),
        ("report --samples 2", "--png"),
    ):
        figure = tmp_path / f"{flag[2:]}.png"
        figure.write_bytes(b"mine")
        base = f"{command} --model human:typist --data human:typist --n 4 {flag} {figure}"
        code, _, err = run(capsys, base)
        assert code == 2 and "already exists" in err and figure.read_bytes() == b"mine", err
        code, _, err = run(capsys, base + " --overwrite")
        assert code == 0 and figure.read_bytes().startswith(b"\x89PNG"), err
        code, _, err = run(
            capsys, f"{command} --model human:typist --data human:typist --n 4 {flag} {tmp_path}/no/x.png"
        )
        assert code == 2 and "does not exist" in err, err


def test_score_with_ais_and_bdmc(capsys):
    code, out, _ = run(
        capsys,
        "score --model human:typist --data human:typist --n 4 --method ais --steps 8 --particles 8 "
        "--format jsonl",
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and all(r["method"] == "ais[prior]" and r["num_particles"] == 8 for r in rows)
    code, out, _ = run(capsys, "bdmc --model human:typist --n 5 --steps 8 --chains 4 --format jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 5
    assert all({"answer", "log_prob_lower", "log_prob_upper", "exact"} <= set(r) for r in rows)
    code, _, err = run(capsys, "bdmc --model human:arithmetic --n 3")
    assert code == 2 and "needs continuous latents" in err


def test_experiments_print_json_rows(capsys):
    code, out, _ = run(
        capsys, "experiment steganography --bits 0,1 --train 60 --test 40 --disc-steps 5 --format json"
    )
    rows = json.loads(out)["rows"]
    assert code == 0 and [r["bits"] for r in rows] == [0, 1]
    assert all({"bits", "disc_accuracy", "decode_accuracy", "log_prob_drop_nats"} <= set(r) for r in rows)
    code, out, _ = run(capsys, "experiment steganography --bits 0 --train 60 --test 40 --disc-steps 5")
    assert code == 0 and out.splitlines()[0].split()[:2] == ["bits", "smoothing"]  # a table by default


@needs_pyapproxmc
def test_sudoku_experiment_prints_json_rows(capsys):
    code, out, _ = run(
        capsys,
        "experiment sudoku --puzzles 8 --puzzles-9x9 1 --train-steps 5 --disc-steps 5 --format json --seed 3",
    )
    result = json.loads(out)
    assert code == 0 and len(result["counting_rows"]) == 1
    assert all(
        {"imitator", "verifier_disc_accuracy", "log_prob_mean", "verifier_pass_rate"} <= set(r)
        for r in result["rows"]
    )


def test_sample_temperature(capsys):
    code, out, _ = run(
        capsys, "sample --model human:typist --questions word --num-samples 5 --temperature 0.05"
    )
    assert code == 0 and [line.split()[-1] for line in out.splitlines()[1:]] == ["word"] * 5
    code, _, err = run(capsys, "sample --model human:typist --questions word --temperature 0")
    assert code == 2 and "temperature must be > 0" in err


def test_report_json_and_png(capsys, tmp_path):
    png = tmp_path / "report.png"
    code, out, _ = run(
        capsys,
        "report --model human:arithmetic --data human:arithmetic --n 24 --samples 5 --particles 10 "
        f"--disc-steps 5 --verifier arithmetic --png {png}",
    )
    report = json.loads(out)
    assert code == 0 and png.exists()
    assert {"log_prob_mean", "log_prob_stderr", "typicality", "two_sample", "verifier_pass_rate"} <= set(
        report
    )


def test_adversarial_training_from_the_cli(capsys, tmp_path):
    out = tmp_path / "adv"
    code, printed, _ = run(
        capsys,
        f"train --imitator seq2seq --data human:arithmetic --n 200 --out {out} --objective mixed "
        "--verifier arithmetic --steps 4 --eval-every 2 --hidden-dim 16 --max-length 16",
    )
    assert code == 0 and json.loads(printed)["steps"] == 4
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [2, 4] and all("reward" in h for h in history)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            "report --model human:arithmetic --data human:arithmetic --verifier nope",
            "unknown verifier 'nope'",
        ),
        (
            "report --model human:arithmetic --data human:arithmetic --n 8 --samples 2 --particles 2 "
            "--disc-steps 1 --verifier json:loads",
            "verifier 'json:loads' raised TypeError on question",
        ),
        (
            "train --imitator seq2seq --data human:arithmetic --out x --verifier arithmetic",
            "--verifier is for",
        ),
        (
            "train --imitator seq2seq --data human:arithmetic --out x --objective adversarial --label-smoothing 0.1",
            "--label-smoothing is for the retrodiction and iwae objectives",
        ),
        ("experiment steganography --bits 7", "bits must be in 0..4"),
    ],
)
def test_adversarial_bad_input_is_one_line(capsys, command, message):
    code, _, err = run(capsys, command)
    assert code == 2 and message in err and err.count("\n") == 1
