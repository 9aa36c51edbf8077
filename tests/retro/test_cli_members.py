"""``retro train --members N``: members trained side by side as ordinary runs, saved as one ensemble."""

from __future__ import annotations

import json
import shlex

import pytest
import torch

from retro.checkpoint import read_checkpoint
from retro.cli import main
from retro.inference.trained import load_trained

TINY = "--imitator seq2seq --data human:typist --n 40 --hidden-dim 8 --max-length 24 --eval-every 2"


def _run(capfd, command: str) -> tuple[int, str, str]:
    code = main(shlex.split(command))
    out, err = capfd.readouterr()  # the members are processes of their own: capture at the file descriptors
    return code, out, err


def _weights(directory) -> dict[str, torch.Tensor]:
    return read_checkpoint(directory)[0]


def test_members_are_ordinary_runs_with_consecutive_seeds_and_their_ensemble_loads(tmp_path, capfd):
    out = tmp_path / "ens"
    code, _, err = _run(capfd, f"train {TINY} --steps 3 --members 2 --seed 5 --out {out}")
    assert code == 0, err
    assert "2 members side by side" in err
    code, _, err = _run(capfd, f"train {TINY} --steps 3 --seed 6 --out {tmp_path / 'alone'}")
    assert code == 0, err
    member, alone = _weights(out / "members" / "1"), _weights(tmp_path / "alone")
    assert member.keys() == alone.keys()
    assert all(torch.equal(member[k], alone[k]) for k in member)  # member 1 is the plain run with seed 5 + 1
    first = _weights(out / "members" / "0")
    assert any(not torch.equal(first[k], member[k]) for k in member)
    assert [json.loads(line)["step"] for line in (out / "members" / "0" / "history.jsonl").open()][-1] == 3
    ensemble = load_trained(out).imitator
    assert ensemble.name == "ensemble"
    code, stdout, err = _run(
        capfd, f"score --model {out} --data human:typist --n 3 --method exact --format jsonl"
    )
    assert code == 0, err
    assert len(stdout.splitlines()) == 3


@pytest.mark.slow
def test_resume_continues_every_member_and_a_failing_member_is_one_line(tmp_path, capfd):
    out = tmp_path / "ens"
    assert _run(capfd, f"train {TINY} --steps 2 --members 2 --out {out}")[0] == 0
    code, _, err = _run(capfd, f"train --resume {out} --steps 4 --data human:typist")
    assert code == 0, err
    for k in (0, 1):
        steps = [json.loads(line)["step"] for line in (out / "members" / str(k) / "history.jsonl").open()]
        assert steps[-1] == 4
    assert load_trained(out).imitator.name == "ensemble"
    (out / "members" / "1" / "state" / "config.json").write_text("{not json")
    code, _, err = _run(capfd, f"train --resume {out} --steps 6 --data human:typist")
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("retro train: error: member 1 failed:"), err


@pytest.mark.parametrize("members", ["0", "65"])
def test_bad_member_counts_are_one_line(tmp_path, capfd, members):
    code, _, err = _run(capfd, f"train {TINY} --steps 1 --members {members} --out {tmp_path / 'x'}")
    assert code == 2
    assert err.strip() == f"retro train: error: --members must be an integer from 1 to 64, got {members}"
    assert not (tmp_path / "x").exists()


def test_members_refuse_torchrun(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = _run(capfd, f"train {TINY} --steps 1 --members 2 --out {tmp_path / 'x'}")
    assert code == 2
    assert err.strip().endswith("--members starts its own processes: run it without torchrun")


def test_an_out_that_is_a_file_is_refused_before_any_member_starts(tmp_path, capfd):
    target = tmp_path / "taken"
    target.write_text("not a run")
    code, _, err = _run(capfd, f"train {TINY} --steps 1 --members 2 --out {target}")
    assert code == 2
    assert (
        err.strip().splitlines()[-1]
        == f"retro train: error: --out {str(target)!r} exists and is not a directory"
    )
    assert target.read_text() == "not a run"


def test_a_member_directory_that_is_a_symbolic_link_is_refused(tmp_path, capfd):
    out, elsewhere = tmp_path / "ens", tmp_path / "elsewhere"
    (out / "members" / "0").mkdir(parents=True)
    elsewhere.mkdir()
    (out / "members" / "1").symlink_to(elsewhere)
    code, _, err = _run(capfd, f"train --resume {out} --steps 4")
    assert code == 2
    assert (
        err.strip().splitlines()[-1].endswith("is a symbolic link; retro follows none inside its directories")
    )
    assert list(elsewhere.iterdir()) == []
