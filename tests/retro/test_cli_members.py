"""``retro train --members N``: members trained side by side as ordinary runs, saved as one ensemble."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch

from retro.checkpoint import read_checkpoint
from retro.cli import main
from retro.cli.train_members import is_ensemble_run
from retro.errors import RetroError
from retro.inference.ensemble import combine_trained
from retro.inference.trained import load_trained, save_trained
from retro.models import Seq2Seq
from retro.safepaths import open_for_appending

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


def _fake_ensemble_run(out, members: int) -> None:
    """An ensemble run as ``retro train --members`` leaves it (member runs, logs, their ensemble), built without
    training: untrained members saved as retro saves them."""
    directories = [out / "members" / str(k) for k in range(members)]
    for k, directory in enumerate(directories):
        save_trained(directory, Seq2Seq(hidden_dim=8))
        if k:
            (out / "members" / f"{k}.log").write_text("member log\n")
    combine_trained(directories, out)


def test_members_without_data_is_one_line_before_any_work(tmp_path, capfd):
    code, _, err = _run(capfd, f"train --imitator seq2seq --members 2 --out {tmp_path / 'x'}")
    assert code == 2
    assert err.strip() == "retro train: error: give --data (or --resume DIR)"
    assert not (tmp_path / "x").exists()


def test_resume_refuses_another_member_count(tmp_path, capfd):
    out = tmp_path / "ens"
    _fake_ensemble_run(out, 2)
    code, _, err = _run(capfd, f"train --resume {out} --members 3 --steps 4")
    assert code == 2
    assert err.strip() == (
        f"retro train: error: --members 3: the run in {str(out)!r} has 2 members; resume it without --members"
    )
    (tmp_path / "single").mkdir()
    code, _, err = _run(capfd, f"train --resume {tmp_path / 'single'} --members 2 --steps 4")
    assert code == 2 and err.strip().endswith("is a single run; resume it without --members"), err
    assert not (out / "members" / "2").exists()


def test_members_overwrite_refuses_someone_elses_run_before_any_member_starts(tmp_path, capfd):
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "config.json").write_text("{}")
    code, _, err = _run(capfd, f"train {TINY} --steps 1 --members 2 --out {stranger} --overwrite")
    assert code == 2 and "is not a retro run" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in stranger.iterdir()) == ["config.json"]  # no member was started


def test_a_single_run_over_an_ensemble_run_removes_its_members(tmp_path, capfd):
    out = tmp_path / "run"
    _fake_ensemble_run(out, 2)
    code, _, err = _run(capfd, f"train {TINY} --steps 1 --out {out} --overwrite")
    assert code == 0, err
    assert not (out / "members").exists() and (out / "state").is_dir()
    assert not is_ensemble_run(out)
    assert load_trained(out).imitator.name == "seq2seq"


def test_overwrite_refuses_a_members_folder_holding_what_retro_did_not_write(tmp_path, capfd):
    out = tmp_path / "run"
    _fake_ensemble_run(out, 2)
    (out / "members" / "notes.txt").write_text("mine")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    code, _, err = _run(capfd, f"train {TINY} --steps 1 --out {out} --overwrite")
    assert code == 2 and err.count("\n") == 1, err
    assert "notes.txt' is not a member run retro wrote" in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


@pytest.mark.slow
def test_fewer_members_over_a_run_leave_no_stale_members_state_or_history(tmp_path, capfd):
    out = tmp_path / "run"
    assert _run(capfd, f"train {TINY} --steps 1 --out {out}")[0] == 0  # a single run: state/, history.jsonl
    for k in range(4):
        save_trained(out / "members" / str(k), Seq2Seq(hidden_dim=8))
        (out / "members" / f"{k}.log").write_text("old log\n")
    code, _, err = _run(capfd, f"train {TINY} --steps 1 --members 2 --out {out} --overwrite")
    assert code == 0, err
    assert sorted(p.name for p in (out / "members").iterdir()) == ["0", "1", "1.log"]
    assert not (out / "state").exists() and not (out / "history.jsonl").exists()
    assert is_ensemble_run(out) and load_trained(out).info["ensemble_members"] == 2


def test_member_logs_are_opened_without_following_links(tmp_path):
    target = tmp_path / "target"
    target.write_text("untouched")
    (tmp_path / "1.log").symlink_to(target)
    with pytest.raises(RetroError, match="cannot open"):
        open_for_appending(tmp_path / "1.log", create=True)
    assert target.read_text() == "untouched"
    with open_for_appending(tmp_path / "2.log", create=True) as log:
        log.write("line\n")
    assert (tmp_path / "2.log").read_text() == "line\n"


def _children(pid: int) -> list[int]:
    """The member processes of ``pid`` (multiprocessing's spawned children, not its resource tracker)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            command = open(f"/proc/{entry}/cmdline", "rb").read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in command:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has stopped; its reaper is not ours


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_members_stop_when_their_parent_is_killed(tmp_path):
    out = tmp_path / "ens"
    command = [sys.executable, "-m", "retro.cli", *shlex.split(f"train {TINY} --steps 100000 --members 2")]
    parent = subprocess.Popen(
        [*command, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    children = []
    try:
        deadline = time.monotonic() + 120
        # a member's own directory exists only once it runs retro train (after asking for the signal)
        while not all((out / "members" / str(k)).is_dir() for k in (0, 1)):
            assert parent.poll() is None and time.monotonic() < deadline, "the members did not start"
            time.sleep(0.1)
        children = _children(parent.pid)
        assert len(children) == 2
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in children)
    finally:
        parent.kill()
        parent.wait()
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
