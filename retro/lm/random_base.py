"""A randomly initialized base to train from scratch: a byte-level BPE trained on your text and a
GPT-2-style or Llama-style model.

:func:`make_random_base` writes both with ``save_pretrained`` (weights in safetensors) into a new directory, which
:func:`retro.lm.load_base` then loads like any other model, so a model trained from random initialization goes
through the same ``lm`` path as a pretrained one (``retro train --imitator lm --base DIR --finetune all``).
``scripts/make_lm_base.py`` is its command line.

Example:
    >>> make_random_base("runs/base", ["what is 2+2", " 4"], width=32, layers=2)  # doctest: +SKIP
    {'directory': 'runs/base', 'vocab_size': ..., 'parameters': ...}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from retro.errors import RetroError
from retro.lm.extra import require

__all__ = ["make_random_base", "EOS_TEXT"]

EOS_TEXT = "<|endoftext|>"


def make_random_base(
    directory: str | os.PathLike,
    texts: Sequence[str],
    vocab_size: int = 512,
    layers: int = 4,
    width: int = 256,
    heads: int = 4,
    positions: int = 128,
    seed: int = 0,
    architecture: str = "gpt2",
) -> dict:
    """Train a byte-level BPE on ``texts`` and write it with a random model into ``directory`` (new).

    Args:
        texts: what the tokenizer learns its merges from: the text the model will read (prompts, and answers after
            the template's separator). Any text stays encodable: the 256 bytes are always tokens.
        vocab_size: the tokenizer's size (256 bytes, EOS, merges).
        layers, width, heads, positions: the transformer's depth, width, attention heads and context length.
        seed: seeds the weights.
        architecture: ``"gpt2"`` (learned absolute positions, GELU MLP) or ``"llama"`` (rotary positions,
            RMSNorm, SwiGLU MLP of width ``8 * width / 3``, no biases).

    Returns:
        ``{"directory", "vocab_size", "parameters"}``.
    """
    tokenizers = require("tokenizers")
    transformers = require("transformers")
    directory = Path(directory)
    if directory.exists():
        raise RetroError(f"{directory} exists; a new base needs a new directory")
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TEXT],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS_TEXT, bos_token=EOS_TEXT
    )
    eos = fast.convert_tokens_to_ids(EOS_TEXT)
    if architecture == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=len(fast),
            n_positions=positions,
            n_embd=width,
            n_layer=layers,
            n_head=heads,
            bos_token_id=eos,
            eos_token_id=eos,
        )
    elif architecture == "llama":
        config = transformers.LlamaConfig(
            vocab_size=len(fast),
            max_position_embeddings=positions,
            hidden_size=width,
            intermediate_size=8 * width // 3,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            bos_token_id=eos,
            eos_token_id=eos,
        )
    else:
        raise RetroError(f"architecture must be 'gpt2' or 'llama', got {architecture!r}")
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    directory.mkdir(parents=True)
    fast.save_pretrained(directory)
    model.save_pretrained(directory, safe_serialization=True)
    return {
        "directory": str(directory),
        "vocab_size": len(fast),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
