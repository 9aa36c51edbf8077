"""A base made from scratch (``retro.lm.random_base`` and ``scripts/make_lm_base.py``) loads and scores through
the same path as a pretrained one, in both architectures; the answers-only merges give one token per phoneme."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="needs the [lm] extra: pip install 'retro-imitators[lm]'")

from retro.errors import RetroError  # noqa: E402
from retro.inference import exact  # noqa: E402
from retro.lm import load_base  # noqa: E402
from retro.lm.base import weights_sha256  # noqa: E402
from retro.lm.random_base import make_random_base  # noqa: E402
from retro.models import LanguageModel  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_lm_base.py"
PAIRS = [
    ("tomato", "T AH M EY T OW"),
    ("potato", "P AH T EY T OW"),
    ("aaron's", "EH R AH N Z"),
    ("bout", "B AW T"),
]
SIZES = dict(vocab_size=300, layers=1, width=32, heads=2, positions=64)


@pytest.mark.parametrize(
    ("architecture", "model_class"), [("gpt2", "GPT2LMHeadModel"), ("llama", "LlamaForCausalLM")]
)
def test_random_base_loads_and_scores_like_a_pretrained_one(tmp_path, architecture, model_class):
    texts = [f"{q}: " for q, _ in PAIRS] + [f" {a}" for _, a in PAIRS]
    made = make_random_base(tmp_path / "a", texts, architecture=architecture, **SIZES)
    again = make_random_base(tmp_path / "b", texts, architecture=architecture, **SIZES)
    assert weights_sha256(tmp_path / "a") == weights_sha256(tmp_path / "b")  # seeded: the same files
    base = load_base(made["directory"], dtype=torch.float64)
    assert type(base.model).__name__ == model_class
    assert made["parameters"] == again["parameters"] == sum(p.numel() for p in base.model.parameters())
    imitator = LanguageModel(base, template="{question}: ", max_length=16).double()
    records = exact(imitator, [q for q, _ in PAIRS], [a for _, a in PAIRS]).records
    assert all(r.log_prob < 0 and torch.isfinite(torch.tensor(r.log_prob)) for r in records)


def test_random_base_refuses_an_existing_directory_and_an_unknown_architecture(tmp_path):
    with pytest.raises(RetroError, match="architecture must be"):
        make_random_base(tmp_path / "new", ["a b"], architecture="rnn", **SIZES)
    (tmp_path / "old").mkdir()
    with pytest.raises(RetroError, match="exists"):
        make_random_base(tmp_path / "old", ["a b"], **SIZES)


def test_answers_only_merges_spell_questions_by_letter_and_phonemes_whole(tmp_path):
    data = tmp_path / "g2p.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in PAIRS * 5))
    out = tmp_path / "base"
    spec = importlib.util.spec_from_file_location("make_lm_base", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    sizes = ["--layers", "1", "--width", "32", "--heads", "2", "--architecture", "llama"]
    assert script.main(["--data", str(data), "--out", str(out), "--merges-from", "answers", *sizes]) == 0
    tokenizer = load_base(out).tokenizer
    assert tokenizer.tokenize("aaron's:") == list("aaron's:")
    phonemes = sorted({p for _, a in PAIRS for p in a.split()})
    assert [len(tokenizer.tokenize(" " + p)) for p in phonemes] == [1] * len(phonemes)
