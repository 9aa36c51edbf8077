"""``retro evaluate``: held-out log p, perplexity, and the 1-best answers' error rates (WER, PER), as one object
(the metrics are computed by :func:`retro.inference.evaluate.evaluate`)."""

from __future__ import annotations

import json
import sys

from retro.cli.common import add_seed, json_ready, load_data, load_model, seed_everything, write_records
from retro.errors import RetroError

__all__ = ["register", "run"]


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
    p.set_defaults(run=run)


def run(args) -> int:
    from retro.inference.evaluate import evaluate

    seed_everything(args.seed)
    model = load_model(args.model, args.device)
    pairs = load_data(args.data, model.program, args.n, args.seed)
    if args.particles < 1:
        raise RetroError(f"--particles must be >= 1, got {args.particles}")
    if args.beam < 1:
        raise RetroError(f"--beam must be >= 1, got {args.beam}")
    result = evaluate(
        model.program,
        pairs.questions,
        pairs.answers,
        guide=model.guide,
        num_particles=args.particles,
        beam=args.beam,
        seed=args.seed,
        progress=sys.stderr.isatty(),
    )
    result = json_ready({"model": args.model, "data": args.data, **result})
    if args.format == "json":
        print(json.dumps(result, ensure_ascii=False))
    else:
        write_records([{"metric": k, "value": v} for k, v in result.items()], "table")
    return 0
