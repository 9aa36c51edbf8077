"""``retro bdmc``: the BDMC sandwich (forward / reverse AIS) on answers simulated from a model."""

from __future__ import annotations

import random

from retro.cli.common import add_base, add_seed, load_model, seed_everything, write_records
from retro.cli.progress import add_quiet, show_progress
from retro.data import data_file, load_pairs
from retro.errors import RetroError
from retro.inference.bdmc import DEFAULT_BDMC_CHAINS, DEFAULT_CONFIDENCE


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bdmc",
        help="sandwich log p between forward and reverse AIS on simulated answers",
        description="Simulate answers from the model, then bound their log p below (forward AIS) and above "
        "(reverse AIS from the exact posterior sample); the gap bounds AIS's error on data like this.",
    )
    p.add_argument("--model", required=True, help="directory written by 'retro train', or human:NAME")
    p.add_argument("--n", type=int, default=50, help="answers to simulate (default 50)")
    p.add_argument(
        "--questions",
        default=None,
        help="data spec to take questions from (default: the human's own, or the training data)",
    )
    p.add_argument("--steps", type=int, default=48, help="annealing steps (default 48)")
    p.add_argument(
        "--chains",
        type=int,
        default=DEFAULT_BDMC_CHAINS,
        help=f"chains per answer and direction (default {DEFAULT_BDMC_CHAINS})",
    )
    p.add_argument(
        "--confidence",
        type=float,
        default=DEFAULT_CONFIDENCE,
        help=f"probability with which both bounds hold together (default {DEFAULT_CONFIDENCE}; 0: bare means)",
    )
    p.add_argument("--proposal", choices=("prior", "guide"), default="prior")
    p.add_argument("--format", choices=("jsonl", "table"), default="table")
    p.add_argument("--device", default="cpu")
    add_quiet(p)
    add_seed(p)
    add_base(p)
    p.set_defaults(run=run)


def _questions(args, model) -> list[str]:
    if args.n < 1:
        raise RetroError(f"--n must be >= 1, got {args.n}")
    if args.questions:
        return load_pairs(args.questions, n=args.n, seed=args.seed).questions
    if hasattr(model.program, "draw_question"):  # a synthetic human
        rng = random.Random(args.seed)
        return [model.program.draw_question(rng) for _ in range(args.n)]
    spec = model.info.get("data") if model.info else None
    if not isinstance(spec, str) or not spec:
        raise RetroError("give --questions: this model does not record the data it was trained on")
    if data_file(spec) is not None:  # a checkpoint is untrusted: retro opens no path read from one
        raise RetroError(
            f"give --questions: this model was trained on the file {spec!r}, and retro opens no path read from a "
            "checkpoint"
        )
    return load_pairs(spec, n=args.n, seed=args.seed).questions


def run(args) -> int:
    from retro.inference.bdmc import bdmc

    seed_everything(args.seed)
    model = load_model(args.model, args.device, base=args.base)
    results = bdmc(
        model.program,
        _questions(args, model),
        guide=model.guide,
        proposal=args.proposal,
        num_steps=args.steps,
        num_chains=args.chains,
        seed=args.seed,
        confidence=args.confidence,
        progress=show_progress(args),
    )
    write_records([r.to_dict() for r in results], args.format)
    return 0
