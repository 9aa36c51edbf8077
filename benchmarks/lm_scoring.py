"""Scoring answers with a pretrained causal LM: retro's canonical log p against lm-evaluation-harness.

On the same (prompt, answer) pairs and the same model (GPT-2-small-sized: 12 layers, 768 wide, 50257 tokens; random
weights, since the cost does not depend on them), this measures:

* agreement: retro's log p of each answer's canonical tokens (the ``lm`` imitator, EOS term set apart) against
  lm-evaluation-harness's ``loglikelihood`` (HF backend, offline, on the same local model directory) for the
  same context text and continuation tokens: ``max_abs_diff_nats`` (required: <= 1e-4); and that retro's record
  is that sum plus the EOS term;
* time: retro's ``exact`` on the ``lm`` imitator (records with kind ``exact``, EOS included) against
  lm-evaluation-harness at each of ``--batch-sizes`` (its best is the reference); rounds are interleaved and
  each method's best round counts: ``ratio_retro_vs_lm_eval`` (required: <= 1.05);
* personas: the ``lm-persona`` imitator with K = 8 persona texts of 64 tokens each, exact by enumeration, against
  8 x the ``lm`` imitator's time on the same pairs: ``ratio_persona_vs_8_lm`` (required: <= 1.25). The persona
  texts are computed once (and cached while the weights do not change), each prompt once per persona.

The model is written with ``save_pretrained`` (safetensors) into a temporary directory with a byte-level BPE
trained on generated text (padded with added tokens to GPT-2's 50257), and both tools load it from there.
Nothing is downloaded. ``--smoke`` shrinks everything (a 2-layer model, 8 pairs) to run in seconds; without
``lm_eval`` installed the comparison is skipped and the JSON says why.

Usage::

    python benchmarks/lm_scoring.py                  # GPT-2-small-sized, 64 pairs (a few minutes on 2 CPU cores)
    python benchmarks/lm_scoring.py --smoke
    python benchmarks/lm_scoring.py --device cuda --dtype bfloat16

Prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

TEMPLATE = "Question: {question}\nAnswer: "
SYLLABLES = [c + v for c in "bcdfghklmnprstvwz" for v in "aeiou"] + ["th", "sh", "ng", "st"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(_word(rng) for _ in range(rng.randint(low, high)))


def build_model(
    directory: Path, smoke: bool, seed: int, layers: int | None = None, width: int | None = None
) -> None:
    """A random GPT-2-style model and a byte-level BPE trained on generated text, saved with save_pretrained."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    rng = random.Random(seed)
    text = [_sentence(rng, 5, 30) + "." for _ in range(400 if smoke else 20000)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=600 if smoke else 8000,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(text, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    vocab = 1024 if smoke else 50257
    tokenizer.add_tokens([f"<|unused{i}|>" for i in range(vocab - len(tokenizer))])
    size = dict(n_embd=64, n_layer=2, n_head=2) if smoke else dict(n_embd=768, n_layer=12, n_head=12)
    if layers:
        size["n_layer"] = layers
    if width:
        size.update(n_embd=width, n_head=max(1, width // 64))
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, eos_token_id=0, bos_token_id=0, **size)
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def make_pairs(count: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """(questions, answers, personas): prompts of ~10-40 tokens, answers of ~2-20 tokens."""
    rng = random.Random(seed + 1)
    questions = [_sentence(rng, 3, 14) + "?" for _ in range(count)]
    answers = [_sentence(rng, 1, 8) for _ in range(count)]
    return questions, answers, []


def personas_of(tokenizer, count: int, tokens: int, seed: int) -> list[str]:
    """``count`` persona texts of exactly ``tokens`` tokens each (ending with a newline)."""
    rng = random.Random(seed + 2)
    texts = []
    while len(texts) < count:
        words = ["You", "are"]
        while len(tokenizer.encode(" ".join(words) + ".\n")) < tokens:
            words.append(_word(rng))
        text = " ".join(words) + ".\n"
        if len(tokenizer.encode(text)) == tokens:
            texts.append(text)
    return texts


def canonical_terms(imitator, questions, answers) -> tuple[torch.Tensor, torch.Tensor]:
    """Per answer: (log p of its canonical tokens, log p of EOS after them), from the decoder's teacher forcing."""
    with torch.no_grad():
        cache = imitator.prompt_cache(imitator.encode_questions(questions))
        batch = imitator.encode_answers(answers)
        distribution = imitator.answer_distribution(cache)
        context, extra = distribution.decoder_inputs()
        per_token = imitator.decoder.token_log_probs(context, batch.tokens, **extra).double()
    positions = torch.arange(per_token.shape[1])
    continuation = per_token.masked_fill(positions >= batch.lengths[:, None], 0.0).sum(-1)
    eos = per_token.gather(1, batch.lengths[:, None])[:, 0]
    return continuation, eos


def timed(fn):
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny model and 8 pairs (seconds)")
    parser.add_argument(
        "--pairs", type=int, default=None, help="number of (prompt, answer) pairs (default 64)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (default 3)")
    parser.add_argument(
        "--batch-sizes", default=None, help="lm-evaluation-harness batch sizes (default 8,16,32,64)"
    )
    parser.add_argument("--personas", type=int, default=8)
    parser.add_argument("--persona-tokens", type=int, default=64)
    parser.add_argument("--layers", type=int, default=None, help="override the model's depth (default 12)")
    parser.add_argument("--width", type=int, default=None, help="override the model's width (default 768)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pairs = args.pairs or (8 if args.smoke else 64)
    rounds = args.rounds or (1 if args.smoke else 3)
    batch_sizes = [int(b) for b in (args.batch_sizes or ("8" if args.smoke else "8,16,32,64")).split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from retro.inference import exact
    from retro.lm import load_base
    from retro.models import LanguageModel, PersonaLM

    dtype = getattr(torch, args.dtype)
    report: dict = {"benchmark": "lm_scoring", "smoke": args.smoke, "pairs": pairs, "device": args.device}
    report.update(dtype=args.dtype, rounds=rounds, torch_threads=torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "model"
        seconds, _ = timed(lambda: build_model(directory, args.smoke, args.seed, args.layers, args.width))
        report["build_seconds"] = round(seconds, 1)
        base = load_base(directory, dtype=dtype, device=args.device)
        config = base.model.config
        report["model"] = {
            "layers": config.n_layer,
            "width": config.n_embd,
            "vocab": config.vocab_size,
            "parameters": sum(p.numel() for p in base.model.parameters()),
        }
        questions, answers, _ = make_pairs(pairs, args.seed)
        lm = LanguageModel(base, template=TEMPLATE, max_length=64)
        personas = personas_of(base.tokenizer, args.personas, args.persona_tokens, args.seed)
        mixture = PersonaLM(base, personas=personas, template=TEMPLATE, max_length=64)
        prompt_tokens = [len(lm.prompt_ids(q)) for q in questions]
        answer_tokens = [len(lm.codec.encode(a)) for a in answers]
        report["prompt_tokens_mean"] = sum(prompt_tokens) / pairs
        report["answer_tokens_mean"] = sum(answer_tokens) / pairs

        continuation, eos = canonical_terms(lm, questions, answers)
        records = exact(lm, questions, answers)
        total = torch.tensor([r.log_prob for r in records], dtype=torch.float64)
        report["record_minus_terms_max_abs"] = float((total - continuation - eos).abs().max())
        report["eos_term_mean"] = float(eos.mean())

        methods = {
            "lm": lambda: exact(lm, questions, answers),
            "persona": lambda: exact(mixture, questions, answers),
        }
        harness = None
        try:
            from lm_eval.api.instance import Instance
            from lm_eval.models.huggingface import HFLM

            harness = HFLM(
                pretrained=str(directory), device=args.device, batch_size=batch_sizes[0], dtype=args.dtype
            )
            requests = [
                Instance(
                    "loglikelihood",
                    doc={},
                    arguments=(TEMPLATE.rstrip().replace("{question}", q), " " + a),
                    idx=i,
                )
                for i, (q, a) in enumerate(zip(questions, answers))
            ]

            def harness_run(size: int):
                def run():
                    harness.batch_size_per_gpu = size
                    return harness.loglikelihood(requests, disable_tqdm=True)

                return run

            theirs = torch.tensor([value for value, _ in harness_run(batch_sizes[0])()], dtype=torch.float64)
            report["max_abs_diff_nats"] = float((continuation - theirs).abs().max())
            report["mean_log_prob_lm_eval"] = float(theirs.mean())
            for size in batch_sizes:
                methods[f"lm_eval_bs{size}"] = harness_run(size)
        except ImportError as e:
            report["lm_eval"] = f"skipped: lm-evaluation-harness is not installed ({e.name})"
        report["mean_log_prob_retro"] = float(continuation.mean())

        for fn in methods.values():  # warm-up (and the persona texts' cache)
            fn()
        best = {name: float("inf") for name in methods}
        for _ in range(rounds):
            for name, fn in methods.items():
                best[name] = min(best[name], timed(fn)[0])
        report["seconds"] = {name: round(value, 4) for name, value in best.items()}
        report["ratio_persona_vs_8_lm"] = best["persona"] / (8 * best["lm"]) * (8 / args.personas)
        if harness is not None:
            harness_best = min(best[f"lm_eval_bs{size}"] for size in batch_sizes)
            report["lm_eval_best_batch_size"] = min(batch_sizes, key=lambda s: best[f"lm_eval_bs{s}"])
            report["ratio_retro_vs_lm_eval"] = best["lm"] / harness_best
    return report


if __name__ == "__main__":
    result = main(sys.argv[1:])
    print(json.dumps(result))
