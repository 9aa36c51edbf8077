"""``retro report``: judge an imitator in absolute terms (log p, typicality, two-sample tests, a verifier)."""

from __future__ import annotations

import json

from retro.atomic import atomic_write
from retro.cli.common import add_base, add_seed, json_ready, load_data, load_model, seed_everything
from retro.cli.progress import add_quiet, show_progress
from retro.data import data_file
from retro.safepaths import check_output_file


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="judge an imitator: log p, typicality test, classifier two-sample test, verifier pass rate",
        description="Judge a model on held-out human pairs: held-out log p with its standard error, a typicality "
        "test (human answers ranked among the model's own), a classifier two-sample test (held-out accuracy of a "
        "discriminator, with its binomial confidence interval) and, with --verifier, the pass rate of the "
        "model's answers. Prints one JSON object; --png also draws the report.",
    )
    p.add_argument("--model", required=True, help="directory written by 'retro train', or human:NAME")
    p.add_argument("--data", required=True, help="held-out JSONL/CSV pairs, or human:NAME")
    p.add_argument("--n", type=int, default=500, help="pairs to judge on (default 500)")
    p.add_argument(
        "--verifier",
        default=None,
        help="built-in verifier (arithmetic, sudoku) or package.module:function (default: none)",
    )
    p.add_argument(
        "--samples", type=int, default=50, help="model answers per question, typicality (default 50)"
    )
    p.add_argument("--particles", type=int, default=500, help="importance particles per log p (default 500)")
    p.add_argument("--disc-steps", type=int, default=300, help="two-sample discriminator steps (default 300)")
    p.add_argument("--png", default=None, help="also save the report as a PNG figure here (default: none)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --png file")
    p.add_argument("--details", action="store_true", help="include per-question p-values and log p values")
    p.add_argument("--device", default="cpu")
    add_quiet(p)
    add_seed(p)
    add_base(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from retro.inference.report import imitator_report, plot_report
    from retro.verifiers import verifier_from_spec

    if args.png:  # before any work
        check_output_file(args.png, args.overwrite, [data_file(args.data)], flag="--png")
    seed_everything(args.seed)
    verifier = verifier_from_spec(args.verifier) if args.verifier else None  # bad specs fail before any work
    model = load_model(args.model, args.device, base=args.base)
    pairs = load_data(args.data, model.program, args.n, args.seed)
    report = imitator_report(
        model.program,
        pairs.questions,
        pairs.answers,
        guide=model.guide,
        verifier=verifier,
        num_samples=args.samples,
        num_particles=args.particles,
        discriminator_steps=args.disc_steps,
        seed=args.seed,
        progress=show_progress(args),
    )
    if args.png:
        atomic_write(args.png, lambda tmp: plot_report(report, tmp, title=args.model))
    print(json.dumps(json_ready({"model": args.model, "data": args.data, **report.to_dict(args.details)})))
    return 0
