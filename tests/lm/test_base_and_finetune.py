"""Loading a base safely, fine-tuning what was asked and nothing else, and the command line with ``--base``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from retro.errors import RetroError

pytest.importorskip("transformers", reason="needs the [lm] extra: pip install 'retro-imitators[lm]'")

from retro.cli import main  # noqa: E402
from retro.inference.train import TrainConfig, train  # noqa: E402
from retro.lm import BaseModelError, load_base, weights_sha256  # noqa: E402
from retro.models import LanguageModel  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def copy_base(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_bad_bases_are_one_line_errors(lm_dirs, tmp_path):
    with pytest.raises(BaseModelError, match="is not a directory"):
        load_base(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BaseModelError, match="has no config.json"):
        load_base(tmp_path / "empty")
    remote = copy_base(lm_dirs["gpt2"], tmp_path / "remote")
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (remote / "config.json").write_text(json.dumps(config))
    with pytest.raises(BaseModelError, match="needs its own code"):
        load_base(remote)
    pickled = copy_base(lm_dirs["gpt2"], tmp_path / "pickled")
    state = load_base(pickled).model.state_dict()
    torch.save(state, pickled / "pytorch_model.bin")
    for path in pickled.glob("*.safetensors"):
        path.unlink()
    with pytest.raises(BaseModelError, match=r"holds only pickled weights \(pytorch_model.bin\)"):
        load_base(pickled)
    corrupt = copy_base(lm_dirs["gpt2"], tmp_path / "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(BaseModelError, match="cannot be loaded as a causal LM"):
        load_base(corrupt)
    for error in (BaseModelError,):
        assert issubclass(error, RetroError)
    assert (
        weights_sha256(lm_dirs["gpt2"])
        == load_base(lm_dirs["gpt2"]).sha256
        != weights_sha256(lm_dirs["llama"])
    )


def test_without_the_extra_retro_imports_and_says_how_to_install_it():
    """A fresh interpreter in which transformers cannot be imported: ``import retro`` and the registry work, and
    an lm imitator is one line naming the extra (exit status 2)."""
    code = (
        "import sys; sys.modules['transformers'] = None; sys.modules['peft'] = None\n"
        "import retro, retro.lm, retro.models\n"
        "assert 'lm' in retro.models.IMITATORS\n"
        "from retro.cli import main\n"
        "sys.exit(main(['train', '--imitator', 'lm', '--base', 'somewhere', '--data', 'human:arithmetic', "
        "'--out', 'unused']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'retro-imitators[lm]'" in lines[0], done.stderr


def test_lora_trains_the_adapters_only_and_leaves_the_base_alone(load_tiny):
    base = load_tiny("gpt2", torch.float32)
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    imitator = LanguageModel(base, template="Q: {question}\nA: ", max_length=8, finetune="lora")
    trained = imitator.trained_state()
    assert trained and all("lora_" in name for name in trained)
    start = {k: v.detach().clone() for k, v in trained.items()}
    questions, answers = ["hi", "the cat"] * 4, ["hello", "sat on a mat"] * 4
    train(
        imitator,
        questions,
        answers,
        config=TrainConfig(steps=6, batch_size=4, eval_every=100, learning_rate=1e-2),
    )
    assert any(not torch.equal(start[k], v) for k, v in imitator.trained_state().items())
    frozen = {k: v for k, v in imitator.decoder.model.state_dict().items() if "lora_" not in k}
    assert all(torch.equal(v, before[k.replace(".base_layer", "")]) for k, v in frozen.items())
    assert all(torch.equal(v, before[k]) for k, v in base.model.state_dict().items())  # the base's own model


def test_all_weights_mode_trains_every_weight(load_tiny):
    base = load_tiny("llama", torch.float32)
    imitator = LanguageModel(base, template="{question} ->", max_length=8, finetune="all")
    assert set(imitator.trained_state()) == {f"decoder.model.{k}" for k, _ in base.model.named_parameters()}
    report = train(
        imitator,
        ["ab"] * 8,
        ["b a"] * 8,
        config=TrainConfig(steps=30, batch_size=8, eval_every=100, learning_rate=3e-2),
    )
    assert report.steps == 30
    from retro.inference import exact

    assert exact(imitator, ["ab"], ["b a"]).records[0].log_prob > -2.0  # memorized (random init: about -25)


def test_command_line_train_then_score_with_the_base_given_again(lm_dirs, tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": q, "answer": a}) + "\n"
            for q, a in [("hi", "hello"), ("the cat", "sat")] * 5
        )
    )
    out = tmp_path / "run"
    base = str(lm_dirs["gpt2"])
    args = [
        "train",
        "--imitator",
        "lm-persona",
        "--base",
        base,
        "--persona",
        "A cat.\n",
        "--persona",
        "A dog.\n",
    ]
    args += ["--data", str(data), "--out", str(out), "--steps", "2", "--eval-every", "2", "--batch-size", "4"]
    assert main(args + ["--template", "Q: {question}\nA: "]) == 0
    config = json.loads((out / "config.json").read_text())
    assert base not in json.dumps(config) and len(config["imitator"]["base_sha256"]) == 64
    capsys.readouterr()
    assert (
        main(
            [
                "score",
                "--model",
                str(out),
                "--base",
                base,
                "--data",
                str(data),
                "--method",
                "exact",
                "--format",
                "jsonl",
            ]
        )
        == 0
    )
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 10 and all(r["kind"] == "exact" and r["log_prob"] < 0 for r in records)
    assert main(["score", "--model", str(out), "--data", str(data), "--method", "exact"]) == 2
    assert "give the base model directory again" in capsys.readouterr().err
    assert (
        main(
            [
                "score",
                "--model",
                str(out),
                "--base",
                str(lm_dirs["llama"]),
                "--data",
                str(data),
                "--method",
                "exact",
            ]
        )
        == 2
    )
    assert "is not the one this was trained on" in capsys.readouterr().err
    resume = [
        "train",
        "--resume",
        str(out),
        "--steps",
        "3",
        "--base",
        str(lm_dirs["llama"]),
        "--data",
        str(data),
    ]
    assert main(resume) == 2 and "is not the base model" in capsys.readouterr().err
    assert main(["train", "--imitator", "lm", "--data", str(data), "--out", str(tmp_path / "x")]) == 2
    assert "give --base DIR" in capsys.readouterr().err


def test_adversarial_fine_tuning_of_a_persona_mixture_with_lora(load_tiny):
    """The adversarial objective runs on an LM imitator unchanged: samples with the KV cache, the score-function
    gradient through the whole trace, LoRA adapters and mixture weights updated."""
    from retro.discriminators import NeuralDiscriminator
    from retro.inference import AmortizedGuide
    from retro.inference.adversarial import AdversarialObjective
    from retro.models import PersonaLM

    imitator = PersonaLM(
        load_tiny("gpt2", torch.float32),
        personas=["A.\n", "B b.\n"],
        template="{question} =",
        max_length=6,
        finetune="lora",
    )
    guide = AmortizedGuide(imitator, hidden_dim=8)
    before = {k: v.detach().clone() for k, v in imitator.trained_state().items()}
    discriminator = NeuralDiscriminator(imitator.codec, imitator.max_length, 16)
    objective = AdversarialObjective(imitator, discriminator, guide, samples_per_question=2)
    questions, answers = ["hi", "the cat"] * 4, [" hello", " sat"] * 4
    config = TrainConfig(
        steps=2, batch_size=4, eval_every=2, eval_particles=4, eval_answers=2, progress=False
    )
    report = train(
        imitator, questions, answers, guide, (questions[:2], answers[:2]), config, objective=objective
    )
    assert all(isinstance(v, float) for v in (report.history[-1]["loss"], report.history[-1]["reward"]))
    assert any(not torch.equal(before[k], v) for k, v in imitator.trained_state().items())
