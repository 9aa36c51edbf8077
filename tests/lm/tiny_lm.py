"""Tiny causal language models built from configurations, saved and loaded the way a user's model is.

Nothing is downloaded: a byte-level BPE tokenizer is trained with ``tokenizers`` on text made here, a GPT-2-style or
Llama-style model gets random weights from a small configuration, and both are written with ``save_pretrained``
(weights in safetensors) into a directory that :func:`retro.lm.load_base` then reads like any other.
Shared by the language-model tests (``tests/lm``) and the benchmark.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TRAINING_TEXT", "make_tokenizer", "make_base_directory"]

WORDS = (
    "the cat sat on a mat and the dog ran to the park where hello world said a bird in a tree "
    "what is two plus three answer five question six seven eight nine ten paris london rome "
)
TRAINING_TEXT = [WORDS * 3, "Q: what is the capital?\nA: paris", "hel lo hello help held"]


def make_tokenizer(
    texts: list[str] | None = None,
    vocab_size: int = 320,
    bos: bool = False,
    alphabet: str | None = None,
):
    """A byte-level BPE tokenizer (``PreTrainedTokenizerFast``) trained on ``texts``.

    Args:
        texts: training text (default :data:`TRAINING_TEXT`).
        vocab_size: target vocabulary size (the 256 byte symbols, the merges, the special tokens).
        bos: add ``<s>`` before every encoded text (Llama style); otherwise GPT-2 style, EOS only.
        alphabet: restrict the base symbols to these characters (a tiny vocabulary that cannot encode
            other characters); default all 256 bytes.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>"] + (["<s>"] if bos else [])
    initial = (
        pre_tokenizers.ByteLevel.alphabet()
        if alphabet is None
        else sorted(
            {
                c
                for ch in alphabet
                for c in pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(ch)[0][0]
            }
        )
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=initial, show_progress=False
    )
    tokenizer.train_from_iterator(texts if texts is not None else TRAINING_TEXT, trainer=trainer)
    if bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))]
        )
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|endoftext|>",
        bos_token="<s>" if bos else "<|endoftext|>",
    )


def make_base_directory(
    directory: str | Path,
    kind: str = "gpt2",
    tokenizer=None,
    hidden: int = 16,
    layers: int = 2,
    heads: int = 2,
    positions: int = 256,
    seed: int = 0,
) -> Path:
    """Write a randomly initialized ``kind`` ("gpt2" or "llama") causal LM and its tokenizer into ``directory``."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    tokenizer = tokenizer if tokenizer is not None else make_tokenizer(bos=kind == "llama")
    vocab = len(tokenizer)
    common = dict(vocab_size=vocab, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    if kind == "gpt2":
        config = GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_positions=positions, **common)
    elif kind == "llama":
        config = LlamaConfig(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=positions,
            tie_word_embeddings=False,
            **common,
        )
    else:
        raise ValueError(f"unknown kind {kind!r}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
