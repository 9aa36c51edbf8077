"""Property-based tests (hypothesis): arbitrary bytes and arbitrary JSON in a data file, a checkpoint's
``config.json`` or a training state give a result or one line (a RetroError, which the CLI prints with exit
status 2), never another exception, a hang, or a write outside the output.

Budget (derandomized, so every run tries the same inputs; each example under a 5 s deadline): 500 examples for the
data readers (250 arbitrary byte strings, each read as JSONL and as CSV; 250 arbitrary JSON records and CSV rows),
500 for config.json (300 mutations with arbitrary JSON, 200 arbitrary byte strings, each also written as the
training state's config.json), 500 for the training state (400 mutations with arbitrary JSON restored and checked
against the run as a resumed run does, 100 more resumed through the CLI). 1,500 examples, about 2,200 hostile
files read.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from argparse import Namespace
from datetime import timedelta
from pathlib import Path

import pytest
from cli_run import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile import fingerprint, train_tiny
from retro.checkpoint import CONFIG_FILE
from retro.cli.train import SETTINGS, _resumed_settings
from retro.data import load_pairs
from retro.errors import RetroError
from retro.inference.train_state import check_resumable, load_train_state
from retro.inference.trained import load_trained


def _property(examples: int):
    return settings(
        max_examples=examples,
        deadline=timedelta(seconds=5),
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([0, -1, 1, 2**31, 2**63, 2**70, 10**9, -(10**9)])
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["../../x", "/etc/passwd", "this:s", "shutil:copyfile", "\ud800", "\x1b[2J", "NaN"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)


def _dumps(value) -> str:
    return json.dumps(value, allow_nan=True)


@pytest.fixture(scope="module", autouse=True)
def _small_memory_limit():
    """A config that asks for a big but possible model is legal; a 64 MiB limit (the tiny run needs < 1 MiB)
    turns it into the one-line refusal instead of seconds of initialization per example."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RETRO_MEMORY_LIMIT", "64M")
        yield


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("tiny") / "run")


def _one_line(error: RetroError) -> None:
    assert "\n" not in str(error) and str(error)


# Data readers.
@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scratch")


@_property(250)
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_as_a_data_file(scratch, raw):
    root = scratch
    for name in ("d.jsonl", "d.csv"):
        (root / name).write_bytes(raw)
        before = fingerprint(root)
        try:
            pairs = load_pairs(str(root / name))
            assert len(pairs.questions) == len(pairs.answers) == len(pairs.locations) > 0
        except RetroError as e:
            _one_line(e)
        assert fingerprint(root) == before


@_property(250)
@given(
    records=st.lists(JSON | st.fixed_dictionaries({"question": JSON, "answer": JSON}), max_size=4),
    rows=st.lists(st.lists(st.text(max_size=8), max_size=4), max_size=4),
)
def test_arbitrary_json_lines_and_csv_rows(scratch, records, rows):
    root = scratch
    (root / "d.jsonl").write_text(
        "\n".join(_dumps(r) for r in records), encoding="utf-8", errors="surrogatepass"
    )
    text = io.StringIO()
    csv.writer(text).writerows([["question", "answer"], *rows])
    (root / "d.csv").write_text(text.getvalue(), encoding="utf-8", errors="surrogatepass")
    before = fingerprint(root)
    for name in ("d.jsonl", "d.csv"):
        try:
            pairs = load_pairs(str(root / name))
            assert all(isinstance(t, str) for t in pairs.questions + pairs.answers)
        except RetroError as e:
            _one_line(e)
    assert fingerprint(root) == before


# A checkpoint's config.json.
def _trained_paths(config: dict) -> list[tuple[str, ...]]:
    paths = [(), ("format",), ("weights_file",), ("imitator",), ("guide",), ("info",), ("info", "data")]
    paths += [("imitator", key) for key in config["imitator"]]
    paths += [("guide", "hidden_dim"), ("guide", "sites"), ("guide", "sites", 0)]
    paths += [("guide", "sites", 0, key) for key in config["guide"]["sites"][0]]
    return paths


def _replace(config, path, value, delete: bool):
    if not path:
        return value
    target = config
    for key in path[:-1]:
        target = target[key]
    if delete:
        target.pop(path[-1]) if isinstance(target, dict) else None
    else:
        target[path[-1]] = value
    return config


def _mutations(config: dict, paths):
    return st.tuples(st.sampled_from(paths), JSON, st.booleans())


@pytest.fixture(scope="module")
def trained_config(tiny_run) -> dict:
    return json.loads((tiny_run / CONFIG_FILE).read_text())


@pytest.fixture(scope="module")
def run_copy(tiny_run, tmp_path_factory) -> Path:
    """One copy of the tiny run per module; each example rewrites its config files."""
    model = tmp_path_factory.mktemp("copy") / "run"
    shutil.copytree(tiny_run, model)
    return model


@_property(300)
@given(data=st.data())
def test_arbitrary_json_in_a_checkpoint_config(run_copy, trained_config, data):
    path, value, delete = data.draw(_mutations(trained_config, _trained_paths(trained_config)))
    model, root = run_copy, run_copy.parent
    config = _replace(json.loads(json.dumps(trained_config)), path, value, delete)
    (model / CONFIG_FILE).write_text(_dumps(config), encoding="utf-8", errors="surrogatepass")
    before = fingerprint(root)
    try:
        trained = load_trained(model)
        assert trained.imitator is not None
    except RetroError as e:
        _one_line(e)
    assert fingerprint(root) == before


@_property(200)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_as_config_json(run_copy, raw):
    model, root = run_copy, run_copy.parent
    (model / CONFIG_FILE).write_bytes(raw)
    (model / "state" / CONFIG_FILE).write_bytes(raw)
    before = fingerprint(root)
    for load in (load_trained, lambda d: load_train_state(d / "state")):
        with pytest.raises(RetroError) as caught:
            load(model)
        _one_line(caught.value)
    assert fingerprint(root) == before


# The training state.
@pytest.fixture(scope="module")
def state_config(tiny_run) -> dict:
    return json.loads((tiny_run / "state" / CONFIG_FILE).read_text())


def _state_paths(config: dict) -> list[tuple]:
    paths = [(), *((key,) for key in config), ("info", "settings")]
    paths += [("info", "settings", key) for key in SETTINGS]
    paths += [("optimizer", "param_groups"), ("optimizer", "values"), ("optimizer", "param_groups", 0)]
    paths += [("optimizer", "param_groups", 0, key) for key in config["optimizer"]["param_groups"][0]]
    paths += [("history", 0), ("history", 0, "step")]
    return paths


@pytest.fixture(scope="module")
def trained(tiny_run):
    return load_trained(tiny_run)


def _write_state(run: Path, state_config: dict, data) -> None:
    path, value, delete = data.draw(_mutations(state_config, _state_paths(state_config)))
    config = _replace(json.loads(json.dumps(state_config)), path, value, delete)
    (run / "state" / CONFIG_FILE).write_text(_dumps(config), encoding="utf-8", errors="surrogatepass")


@pytest.mark.slow
@_property(400)
@given(data=st.data())
def test_arbitrary_json_in_a_training_state(run_copy, state_config, trained, data):
    """Loaded, its settings and verifier restored as ``retro train --resume`` does, and checked against the run
    about to continue."""
    run, root = run_copy, run_copy.parent
    _write_state(run, state_config, data)
    before = fingerprint(root)
    try:
        args = Namespace(**{key: None for key in SETTINGS}, resume=str(run), overwrite=False)
        args.steps = 10**6
        state = _resumed_settings(args)
        check_resumable(run / "state", state, {"imitator": trained.imitator, "guide": trained.guide}, 36)
        assert math.isfinite(state.seconds) and state.step >= 0
    except RetroError as e:
        _one_line(e)
    assert fingerprint(root) == before


@_property(100)
@given(data=st.data())
def test_arbitrary_json_in_a_training_state_through_the_cli(run_copy, state_config, capsys, data):
    """``retro train --resume`` in-process: exit status 2 and one line (--steps 1 is never above the saved step,
    so even a valid state stops before training)."""
    run, root = run_copy, run_copy.parent
    _write_state(run, state_config, data)
    before = fingerprint(root)
    code, _, err = run_cli(capsys, ["train", "--resume", str(run), "--steps", "1"])
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert fingerprint(root) == before
