"""Tiny language models for the tests (see ``tiny_lm.py``): built once per session, loaded fresh by each test."""

from __future__ import annotations

import pytest

LM_EXTRA = "needs the [lm] extra (transformers, tokenizers, peft): pip install 'retro-imitators[lm]'"


@pytest.fixture(scope="session")
def lm_dirs(tmp_path_factory):
    """Directories of tiny random models written with ``save_pretrained``: ``gpt2``, ``llama`` (BOS-adding
    tokenizer) and ``ab`` (a GPT-2-style model whose BPE is over the alphabet {a, b}: 6 tokens, for enumeration)."""
    pytest.importorskip("transformers", reason=LM_EXTRA)
    from tiny_lm import make_base_directory, make_tokenizer

    root = tmp_path_factory.mktemp("lm")
    return {
        "gpt2": make_base_directory(root / "gpt2", "gpt2"),
        "llama": make_base_directory(root / "llama", "llama"),
        "ab": make_base_directory(
            root / "ab", "gpt2", make_tokenizer(["ab ba aab abb bab"], vocab_size=6, alphabet="ab"), seed=1
        ),
    }


@pytest.fixture
def load_tiny(lm_dirs):
    """``load_tiny(kind, dtype)``: a freshly loaded base (a test may change it freely)."""
    import torch

    from retro.lm import load_base

    def load(kind: str = "gpt2", dtype=torch.float64):
        return load_base(lm_dirs[kind], dtype=dtype)

    return load
