"""Make a randomly initialized causal language model to train with ``retro train --imitator lm --base DIR``.

A byte-level BPE tokenizer is trained with ``tokenizers`` on the questions and answers of ``--data``, and a
GPT-2-style decoder-only transformer is built from a configuration with random weights (seeded); both are saved
with ``save_pretrained`` (weights in safetensors) to ``--out``, so retro loads them the way it loads any local
model. Needs the ``[lm]`` extra. Example (the base of the CMUdict row in the README):

    python scripts/make_lm_base.py --data builtin:cmudict-g2p:train --template "{question}: " --out runs/g2p-base

The tokenizer is trained on the text the model will read: each question's prompt (``--template``, as ``retro
train --template`` renders it) and each answer after the template's trailing whitespace, which belongs to the
answer (``" AE R AH N"``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EOS = "<|endoftext|>"


def build(
    texts: list[str],
    out: Path,
    vocab_size: int,
    layers: int,
    width: int,
    heads: int,
    positions: int,
    seed: int,
) -> dict:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, bos_token=EOS)
    eos = fast.convert_tokens_to_ids(EOS)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(fast),
        n_positions=positions,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    model = GPT2LMHeadModel(config)
    out.mkdir(parents=True, exist_ok=False)
    fast.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
    return {
        "out": str(out),
        "vocab_size": len(fast),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", required=True, help="the data spec the tokenizer is trained on (retro --data)"
    )
    parser.add_argument("--out", required=True, help="new directory for the model and tokenizer")
    parser.add_argument("--template", default="{question}: ", help="the prompt template retro train will use")
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--positions", type=int, default=128, help="longest prompt + answer in tokens")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from retro.data import load_pairs
    from retro.errors import RetroError
    from retro.lm import PromptTemplate

    out = Path(args.out)
    try:
        if out.exists():
            raise RetroError(f"--out {out} exists; choose a new directory")
        pairs = load_pairs(args.data)
        template = PromptTemplate.of(args.template)
        texts = [template.render(q) for q in pairs.questions] + [
            template.separator + a for a in pairs.answers
        ]
        print(
            json.dumps(
                build(
                    texts,
                    out,
                    args.vocab_size,
                    args.layers,
                    args.width,
                    args.heads,
                    args.positions,
                    args.seed,
                )
            )
        )
    except (RetroError, ImportError) as e:
        print(f"make_lm_base: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
