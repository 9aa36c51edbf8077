"""``retro evaluate``: held-out log p, perplexity, and the 1-best answers' error rates (WER, PER), as one object.

* ``log_prob_mean`` / ``log_prob_stderr``: mean log p per human answer and the standard error of that dataset mean
  (exact when the latents can be summed out: none, or discrete ones with few values; else importance sampling with
  the guide when the model has one, else with the prior).
* ``perplexity_per_token``: ``exp(-sum log p / sum tokens)``, where an answer's tokens are its codec tokens
  *including* the EOS that ends it (so the empty answer counts one token and the rate is finite for any data);
  ``perplexity_per_word``: the same per whitespace-separated word plus one for the end (per phoneme, for G2P).
* ``wer`` / ``per``: the 1-best answer per distinct question (beam search, latents at the prior mode, see
  :mod:`retro.inference.decoding`) against that question's human answers: WER counts questions whose 1-best equals
  none of them; PER is the corpus token error rate against the closest one, over whitespace-separated tokens
  (see :mod:`retro.inference.metrics`).
"""

from __future__ import annotations

import json
import math
import sys

from retro.cli.common import (
    add_base,
    add_seed,
    json_ready,
    load_data,
    load_model,
    seed_everything,
    write_records,
)
from retro.cli.score import score_records
from retro.errors import RetroError

__all__ = ["register", "run", "evaluate"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="held-out log p, perplexity, and WER/PER of the 1-best answers",
        description="Evaluate a model on held-out pairs: log p per answer, perplexity per token, and the error "
        "rates (WER, PER) of its beam-search 1-best answers against the human answers.",
    )
    p.add_argument("--model", required=True, help="directory written by 'retro train', or human:NAME")
    p.add_argument("--data", required=True, help="JSONL/CSV with question and answer fields, or human:NAME")
    p.add_argument("--n", type=int, default=None, help="evaluate the first N pairs (or draw N from a human)")
    p.add_argument("--particles", type=int, default=500, help="importance particles per answer (default 500)")
    p.add_argument("--beam", type=int, default=8, help="beam size of the 1-best decoding (default 8)")
    p.add_argument("--format", choices=("json", "table"), default="json")
    p.add_argument("--device", default="cpu")
    add_seed(p)
    add_base(p)
    p.set_defaults(run=run)


def _method(program, pairs) -> str:
    """``exact`` when the latents can be summed out (none, or few discrete values), else ``importance``."""
    from retro.inference.decoding import MAX_ENUMERATED
    from retro.inference.sites import joint_values, latent_sites

    sites = latent_sites(program, pairs.questions[:1], pairs.answers[:1]).values()
    return (
        "exact" if all(s.discrete for s in sites) and joint_values(sites) <= MAX_ENUMERATED else "importance"
    )


def evaluate(model, pairs, particles: int = 500, beam: int = 8, progress: bool = False) -> dict:
    """The metrics of a loaded model (:func:`retro.cli.common.load_model`) on ``pairs`` (see module docstring)."""
    from retro.inference.decoding import beam_search
    from retro.inference.metrics import group_answers, phoneme_error_rate, word_error_rate
    from retro.inference.results import summarize

    if beam < 1:
        raise RetroError(f"--beam must be >= 1, got {beam}")
    records, _ = score_records(model, pairs, _method(model.program, pairs), None, particles, progress)
    summary = summarize(records)
    codec = model.program.codec
    tokens = sum(len(codec.encode(a)) + 1 for a in pairs.answers)  # + 1: the EOS
    words = sum(len(a.split()) + 1 for a in pairs.answers)  # + 1: the end of the answer
    total = sum(r.log_prob for r in records)
    references = group_answers(pairs.questions, pairs.answers)
    questions = list(references)
    best = [h.answer for h in beam_search(model.program, questions, beam, progress=progress)]
    return {
        "log_prob_mean": summary.log_prob_mean,
        "log_prob_stderr": summary.stderr,
        "perplexity_per_token": _exp(-total / tokens),
        "perplexity_per_word": _exp(-total / words),
        "wer": word_error_rate(questions, best, references),
        "per": phoneme_error_rate(questions, best, references),
        "num_answers": len(records),
        "num_questions": len(questions),
        "num_tokens": tokens,
        "method": summary.method,
        "particles": particles,
        "beam": beam,
    }


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def run(args) -> int:
    seed_everything(args.seed)
    model = load_model(args.model, args.device, base=args.base)
    pairs = load_data(args.data, model.program, args.n, args.seed)
    result = evaluate(model, pairs, args.particles, args.beam, sys.stderr.isatty())
    result = json_ready({"model": args.model, "data": args.data, **result})
    if args.format == "json":
        print(json.dumps(result, ensure_ascii=False))
    else:
        write_records([{"metric": k, "value": v} for k, v in result.items()], "table")
    return 0
