"""Make a randomly initialized causal language model to train with ``retro train --imitator lm --base DIR``.

A byte-level BPE tokenizer is trained with ``tokenizers`` on the text the model will read (each question's prompt,
rendered with ``--template`` as ``retro train --template`` renders it, unless ``--merges-from answers``, and each
answer after the template's trailing whitespace, which belongs to the answer: ``" AE R AH N"``), and a GPT-2-style
or Llama-style (``--architecture``) decoder-only transformer is built from a configuration with random weights (seeded); both are saved with ``save_pretrained`` (weights in
safetensors) to ``--out`` (:func:`retro.lm.random_base.make_random_base`). Needs the ``[lm]`` extra. The base of
the CMUdict row in the README:

    python scripts/make_lm_base.py --data builtin:cmudict-g2p:train --template "{question}: " \
        --merges-from answers --architecture llama --layers 2 --width 128 --heads 4 --out runs/g2p-base
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", required=True, help="the data spec the tokenizer is trained on (retro --data)"
    )
    parser.add_argument("--out", required=True, help="new directory for the model and tokenizer")
    parser.add_argument("--template", default="{question}: ", help="the prompt template retro train will use")
    parser.add_argument(
        "--merges-from",
        choices=("all", "answers"),
        default="all",
        help="learn the BPE merges from the prompts and answers (default), or from the answers alone: then the "
        "questions are spelled byte by byte (one token per letter) and, for CMUdict, every phoneme is one token",
    )
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--positions", type=int, default=128, help="longest prompt + answer in tokens")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--architecture",
        choices=("gpt2", "llama"),
        default="gpt2",
        help="gpt2: learned absolute positions; llama: rotary positions, RMSNorm, SwiGLU (default gpt2)",
    )
    args = parser.parse_args(argv)
    from retro.data import load_pairs
    from retro.errors import RetroError
    from retro.lm import PromptTemplate
    from retro.lm.random_base import make_random_base

    try:
        template = PromptTemplate.of(args.template)
        pairs = load_pairs(args.data)
        prompts = [template.render(q) for q in pairs.questions] if args.merges_from == "all" else []
        texts = prompts + [template.separator + a for a in pairs.answers]
        made = make_random_base(
            args.out,
            texts,
            args.vocab_size,
            args.layers,
            args.width,
            args.heads,
            args.positions,
            args.seed,
            args.architecture,
        )
    except RetroError as e:
        print(f"make_lm_base: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
