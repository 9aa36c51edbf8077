"""Issue 14, case by case: nothing a file says runs code, writes outside its place, or loses data.

Each case ends in the right value or one line on stderr with exit status 2; the directory around the output is
fingerprinted before and after (nothing outside --out touched), and no module named by a file is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
import unicodedata
from pathlib import Path

import pytest
import torch
from cli_run import run_cli
from safetensors.torch import load_file, save_file

from hostile import fingerprint, one_line_error, train_tiny
from retro.checkpoint import CheckpointError, read_checkpoint, weights_path
from retro.cli.common import write_records
from retro.data import DataError, load_pairs
from retro.outlock import OutputLockedError, lock_output


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("tiny") / "run")


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A fresh copy of the tiny run inside ``tmp_path/work`` (the directory that is fingerprinted)."""
    out = tmp_path / "work" / "run"
    shutil.copytree(tiny_run, out)
    return out


def _edit_json(path: Path, edit) -> None:
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


# 1. A file makes retro import code and call it.
@pytest.mark.parametrize("verifier", ["this:s", "shutil:copyfile"])
def test_a_saved_verifier_naming_code_is_not_imported_on_resume(run_copy, capsys, verifier):
    _edit_json(run_copy / "state" / "config.json", lambda c: c["info"]["settings"].update(verifier=verifier))
    sys.modules.pop("this", None)
    before = fingerprint(run_copy.parent)
    code, _, err = run_cli(capsys, ["train", "--resume", str(run_copy), "--steps", "6"])
    assert one_line_error(code, err, "names code", f"give --verifier {verifier} again")
    assert "this" not in sys.modules and fingerprint(run_copy.parent) == before


def test_a_typed_verifier_must_match_the_saved_one(run_copy, capsys):
    _edit_json(run_copy / "state" / "config.json", lambda c: c["info"]["settings"].update(verifier="this:s"))
    code, _, err = run_cli(
        capsys, ["train", "--resume", str(run_copy), "--verifier", "arithmetic", "--steps", "6"]
    )
    assert one_line_error(code, err, "differs from the saved run's verifier") and "this" not in sys.modules


# 2. Data loss.
def test_overwrite_checks_the_inputs_before_removing_anything(run_copy, capsys):
    before = fingerprint(run_copy.parent)
    code, _, err = run_cli(
        capsys, f"train --imitator latent --data misspelled.jsonl --out {run_copy} --overwrite --steps 2"
    )
    assert one_line_error(code, err, "no data file") and fingerprint(run_copy.parent) == before


def test_overwrite_refuses_a_directory_that_is_not_a_retro_run(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "history.jsonl").write_text("my notes\n")
    (out / "weights-final.safetensors").write_bytes(b"precious")
    (out / "config.json").write_text('{"mine": true}')
    before = fingerprint(tmp_path)
    for extra in ("", "--overwrite"):
        code, _, err = run_cli(
            capsys, f"train --imitator seq2seq --data human:arithmetic --out {out} {extra}"
        )
        assert one_line_error(code, err, "already holds" if not extra else "is not a retro run")
    assert fingerprint(tmp_path) == before


def test_score_never_replaces_its_input_or_an_existing_file(tmp_path, capsys):
    data = tmp_path / "in.jsonl"
    data.write_text('{"question": "cat", "answer": "cat"}\n')
    (tmp_path / "old.jsonl").write_text("keep me\n")
    before = fingerprint(tmp_path)
    base = f"score --model human:typist --data {data} --method exact"
    for out, extra, message in [
        (data, "", "is an input of this run"),
        (data, "--overwrite", "is an input of this run"),
        (tmp_path / "old.jsonl", "", "already exists; pass --overwrite"),
        (tmp_path / "missing" / "x.jsonl", "", "does not exist"),
        (tmp_path / "in.jsonl" / "x.jsonl", "", "is an input of this run"),
        (tmp_path, "", "is a directory"),
    ]:
        code, _, err = run_cli(capsys, f"{base} --out {out} {extra}")
        assert one_line_error(code, err, message), (out, err)
    assert fingerprint(tmp_path) == before
    code, _, _ = run_cli(capsys, f"{base} --out {tmp_path / 'old.jsonl'} --overwrite --format jsonl")
    assert code == 0 and json.loads((tmp_path / "old.jsonl").read_text())["answer"] == "cat"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.jsonl",
        "old.jsonl",
    ]  # no temporary or lock file


# 3. Writes and reads outside the checkpoint.
def test_symlinks_inside_a_run_are_neither_written_nor_deleted_through(run_copy, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("do not truncate")
    shutil.copytree(run_copy / "state", elsewhere / "state")
    (run_copy / "history.jsonl").unlink()
    (run_copy / "history.jsonl").symlink_to(elsewhere / "precious.txt")
    before = fingerprint(tmp_path)
    code, _, err = run_cli(capsys, ["train", "--resume", str(run_copy), "--steps", "6"])
    assert one_line_error(code, err, "symbolic link")
    shutil.rmtree(run_copy / "state")
    (run_copy / "state").symlink_to(elsewhere / "state")
    before = fingerprint(tmp_path)
    for command in (
        ["train", "--resume", str(run_copy), "--steps", "6"],
        f"train --imitator latent --data human:arithmetic --n 40 --out {run_copy} --overwrite --steps 2".split(),
    ):
        code, _, err = run_cli(capsys, command)
        assert one_line_error(code, err, "symbolic link")
    assert fingerprint(tmp_path) == before


@pytest.mark.parametrize(
    "name", ["../../elsewhere/w.safetensors", "/etc/passwd", "..", "", 7, "link.safetensors"]
)
def test_a_checkpoint_names_only_plain_files_in_its_directory(run_copy, tmp_path, capsys, name):
    (run_copy / "link.safetensors").symlink_to(weights_path(run_copy))
    _edit_json(run_copy / "config.json", lambda c: c.update(weights_file=name))
    before = fingerprint(tmp_path)
    code, _, err = run_cli(capsys, f"score --model {run_copy} --data human:arithmetic --n 3 --method elbo")
    assert one_line_error(code, err, "weights file") and ("plain file name" in err or "symbolic link" in err)
    assert fingerprint(tmp_path) == before


def test_bdmc_opens_no_path_read_from_a_checkpoint(run_copy, tmp_path, capsys):
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"question": "SECRET-QUESTION", "answer": "x"}\n')
    _edit_json(run_copy / "config.json", lambda c: c["info"].update(data=str(secret)))
    code, out, err = run_cli(capsys, f"bdmc --model {run_copy} --n 2 --chains 2 --steps 2")
    assert one_line_error(code, err, "give --questions", "opens no path") and "SECRET" not in out + err
    _edit_json(run_copy / "state" / "config.json", lambda c: c["info"]["settings"].update(data=str(secret)))
    code, out, err = run_cli(capsys, ["train", "--resume", str(run_copy), "--steps", "6"])
    assert one_line_error(code, err, "opens no path read from its state; give --data again")


# 4. Two runs into one --out.
def test_a_second_run_into_a_locked_out_fails_at_once(run_copy, tmp_path, capsys):
    before = fingerprint(tmp_path)
    with lock_output(run_copy, directory=True):
        start = time.monotonic()
        for command in (
            f"train --imitator latent --data human:arithmetic --n 40 --out {run_copy} --overwrite --steps 2",
            f"train --resume {run_copy} --steps 6",
        ):
            code, _, err = run_cli(capsys, command)
            assert one_line_error(code, err, "in use by another retro run")
        assert time.monotonic() - start < 5
    assert fingerprint(tmp_path) == before
    target = tmp_path / "scores.jsonl"
    with lock_output(target, directory=False):
        code, _, err = run_cli(capsys, f"score --model human:typist --data human:typist --n 2 --out {target}")
        assert one_line_error(code, err, "in use by another retro run")
    assert not target.exists() and not list(tmp_path.glob(".scores*"))


def test_the_lock_dies_with_its_process(tmp_path):
    """A process killed with SIGKILL holds no lock: a killed run can be resumed at once."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        with lock_output(tmp_path, directory=True):
            os.write(write, b"x")
            time.sleep(60)
        os._exit(0)
    assert os.read(read, 1) == b"x"
    with pytest.raises(OutputLockedError):
        with lock_output(tmp_path, directory=True):
            pass
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    with lock_output(tmp_path, directory=True):
        pass
    with lock_output(tmp_path, directory=True, rank=1), lock_output(tmp_path, directory=True, rank=1):
        pass  # torchrun's other ranks take no lock


# 5. Sizes nobody bounds.
@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c["imitator"].update(hidden_dim=10**9),
        lambda c: c["guide"]["sites"][0].update(event_shape=[10**6, 10**6]),
    ],
)
def test_sizes_in_a_config_are_checked_before_allocation(run_copy, capsys, edit):
    _edit_json(run_copy / "config.json", edit)
    code, _, err = run_cli(capsys, f"score --model {run_copy} --data human:arithmetic --n 3")
    assert one_line_error(code, err, "above the memory limit", "RETRO_MEMORY_LIMIT")


def test_the_memory_limit_can_be_raised_and_lowered(run_copy, capsys, monkeypatch):
    monkeypatch.setenv("RETRO_MEMORY_LIMIT", "1K")
    code, _, err = run_cli(capsys, f"score --model {run_copy} --data human:arithmetic --n 3")
    assert one_line_error(code, err, "above the memory limit of 1.0 KiB")
    monkeypatch.setenv("RETRO_MEMORY_LIMIT", "100G")
    assert run_cli(capsys, f"score --model {run_copy} --data human:arithmetic --n 3 --particles 10")[0] == 0


@pytest.mark.parametrize("method", ["ais", "importance"])
def test_a_billion_particles_is_refused_at_once(capsys, method):
    start = time.monotonic()
    code, _, err = run_cli(
        capsys,
        f"score --model human:typist --data human:typist --n 50 --method {method} --particles 1000000000",
    )
    assert one_line_error(code, err, "above the memory limit") and time.monotonic() - start < 10


@pytest.mark.parametrize("length", [100_000, 10_000_000])
def test_questions_have_a_length_bound(tmp_path, capsys, length):
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"question": "q" * length, "answer": "a"}) + "\n")
    start = time.monotonic()
    code, _, err = run_cli(capsys, f"score --model human:typist --data {data} --method exact")
    assert (
        one_line_error(code, err, "question", "tokens long", "bound is 4096")
        and time.monotonic() - start < 20
    )


# 6. Tracebacks where a one-line error is promised.
@pytest.mark.parametrize(
    "text, message",
    [
        ('{"question": "q", "answer": "\\ud800"}', "lone surrogate U+D800"),
        ('{"question": "q", "answer": "a", "n": ' + "9" * 4301 + "}", "malformed JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_hostile_json_is_one_line(tmp_path, capsys, text, message):
    data = tmp_path / "d.jsonl"
    data.write_text(text + "\n")
    code, _, err = run_cli(capsys, f"score --model human:typist --data {data} --method exact")
    assert one_line_error(code, err, "line 1", message)


def test_a_ten_megabyte_csv_field_is_one_line(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("question,answer\n" + "x" * 10_000_000 + ",a\n")
    code, _, err = run_cli(capsys, f"score --model human:typist --data {data} --method exact")
    assert one_line_error(code, err, "line", "malformed CSV")


@pytest.mark.parametrize(
    "flags, message",
    [
        (f"--seed {2**70}", "--seed must be"),
        ("--hidden-dim 0", "--hidden-dim must be an integer >= 1"),
        ("--kl-anneal linear --kl-warmup 0", "--kl-warmup must be an integer >= 1"),
        ("--free-bits nan", "--free-bits must be a finite number"),
        ("--lr inf", "--lr must be a finite number"),
        ("--dropout 1.5", "--dropout must be a number in [0, 1)"),
    ],
)
def test_bad_training_flags_are_one_line_and_write_nothing(tmp_path, capsys, flags, message):
    code, _, err = run_cli(
        capsys, f"train --imitator latent --data human:arithmetic --out {tmp_path / 'o'} {flags}"
    )
    assert one_line_error(code, err, message) and list(tmp_path.iterdir()) == []


def test_score_seed_out_of_range_is_one_line(capsys):
    code, _, err = run_cli(capsys, f"score --model human:typist --data human:typist --n 2 --seed {2**70}")
    assert one_line_error(code, err, "--seed must be")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_checkpoint_with_overwrite_is_refused_before_work(run_copy, capsys):
    os.chmod(run_copy, 0o555)
    try:
        code, _, err = run_cli(
            capsys, f"train --imitator latent --data human:arithmetic --n 40 --out {run_copy} --overwrite"
        )
        assert one_line_error(code, err, "not a writable directory")
    finally:
        os.chmod(run_copy, 0o755)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["imitator"].update(hidden_dim=0), "hidden_size must be greater than zero"),
        (lambda c: c["imitator"].update(hidden_dim=-3), "does not match its config"),
        (lambda c: c["imitator"].update(codec="bytes"), "a codec's config must be a JSON object"),
        (lambda c: c.update(imitator=[1, 2]), "config must be a JSON object"),
        (lambda c: c["guide"].update(encoder="os:system"), "unknown guide encoder 'os:system'"),
    ],
)
def test_bad_values_in_config_json_are_one_line(run_copy, capsys, edit, message):
    _edit_json(run_copy / "config.json", edit)
    code, _, err = run_cli(capsys, f"score --model {run_copy} --data human:arithmetic --n 3")
    assert one_line_error(code, err, message)


# 7. Valid input rejected or silently changed; the decisions the issue leaves open.
def test_json_strings_holding_unicode_line_separators_stay_whole(tmp_path):
    data = tmp_path / "d.jsonl"
    answers = ["a\u2028b", "c\u2029d", "e\u0085f"]
    data.write_text(
        "".join(json.dumps({"question": "q", "answer": a}, ensure_ascii=False) + "\n" for a in answers)
    )
    assert load_pairs(str(data)).answers == answers


def test_csv_byte_order_mark_duplicated_columns_and_extra_fields(tmp_path):
    data = tmp_path / "d.csv"
    data.write_bytes(b"\xef\xbb\xbfquestion,answer\r\nq,a\r\n")
    assert load_pairs(str(data)).answers == ["a"]
    data.write_text("question,answer,answer\nq,first,second\n")
    with pytest.raises(DataError, match="column 'answer' appears 2 times"):
        load_pairs(str(data))
    data.write_text("question,answer\nq,a,surplus\n")
    with pytest.raises(DataError, match="line 2: 3 fields, but the header has 2"):
        load_pairs(str(data))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load(run_copy, capsys, value):
    path = weights_path(run_copy)
    tensors = load_file(str(path))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = torch.full_like(tensors[name], value)
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match="holds NaN or infinite values"):
        read_checkpoint(run_copy)
    code, out, err = run_cli(capsys, f"score --model {run_copy} --data human:arithmetic --n 3")
    assert one_line_error(code, err, "NaN or infinite") and "null" not in out


def test_nfc_and_nfd_are_different_answers(tiny_run, capsys, tmp_path):
    nfc = unicodedata.normalize("NFC", "café")
    nfd = unicodedata.normalize("NFD", "café")
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": "cafe", "answer": a}) + "\n" for a in (nfc, nfd)))
    assert load_pairs(str(data)).answers == [nfc, nfd]  # kept as written, never normalized
    code, out, _ = run_cli(capsys, f"score --model {tiny_run} --data {data} --particles 10 --format jsonl")
    first, second = (json.loads(line) for line in out.splitlines())
    assert code == 0 and first["answer"] != second["answer"] and first["log_prob"] != second["log_prob"]


def test_terminal_escape_sequences_are_not_printed_raw_in_tables(capsys):
    write_records([{"question": "\x1b]0;owned\x07", "answer": "\x1b[2J\x9b31m", "log_prob": -1.0}], "table")
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out and "\\x1b[2J" in out
