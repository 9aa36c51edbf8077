"""``retro evaluate``: held-out log p, perplexity, and the 1-best answers' error rates (WER, PER), as one object
(the metrics are computed by :func:`retro.inference.evaluate.evaluate`)."""

from __future__ import annotations

import json

from retro.cli.common import (
    add_base,
    add_seed,
    json_ready,
    load_data,
    load_model,
    seed_everything,
    warn_unreliable,
    write_records,
)
from retro.cli.progress import add_quiet, show_progress
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
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help="evaluate the first N pairs, or draw N from a human (default: all; 1000)",
    )
    p.add_argument("--particles", type=int, default=500, help="importance particles per answer (default 500)")
    p.add_argument(
        "--target-stderr",
        type=float,
        default=None,
        metavar="S",
        help="adaptive budgets: per answer, as many particles (at most --particles) as a standard error of S "
        "nats needs (default: off, a fixed budget)",
    )
    p.add_argument("--beam", type=int, default=8, help="beam size of the 1-best decoding (default 8)")
    p.add_argument("--format", choices=("json", "table"), default="json")
    p.add_argument("--device", default="cpu")
    add_quiet(p)
    add_seed(p)
    add_base(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from retro.distributed import join_from_environment, leave

    world = join_from_environment()  # under torchrun the ranks share the answers and the questions to decode
    try:
        return _run(args, world)
    finally:
        leave()


def _run(args, world) -> int:
    from retro.inference.evaluate import evaluate

    seed_everything(args.seed)
    model = load_model(args.model, args.device, base=args.base)
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
        progress=show_progress(args),
        target_stderr=args.target_stderr,
        world=world,
    )
    if result is None:  # not rank 0
        return 0
    warn_unreliable("evaluate", result["unreliable_answers"], result["num_answers"])
    result = json_ready({"model": args.model, "data": args.data, **result})
    if args.format == "json":
        print(json.dumps(result, ensure_ascii=False))
    else:
        write_records([{"metric": k, "value": v} for k, v in result.items()], "table")
    return 0
