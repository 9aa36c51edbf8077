"""``retro score``: per-answer log p(answer | question) estimates with standard errors and diagnostics."""

from __future__ import annotations

import sys

from retro.atomic import atomic_open, atomic_write
from retro.cli.common import FORMATS, add_seed, load_data, load_model, seed_everything, write_records
from retro.data import data_file
from retro.errors import RetroError
from retro.inference import estimate, method_names, registrations, summarize
from retro.inference.weights import DEFAULT_MAX_ROWS
from retro.outlock import lock_output
from retro.safepaths import check_output_file


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score",
        help="estimate log p(answer | question) for each answer",
        description="Estimate log p(answer | question) for each human answer.",
    )
    p.add_argument("--model", required=True, help="directory written by 'retro train', or human:NAME")
    p.add_argument("--data", required=True, help="JSONL/CSV with question and answer fields, or human:NAME")
    p.add_argument("--n", type=int, default=None, help="score the first N pairs (or draw N from a human)")
    p.add_argument("--method", choices=method_names(), default="importance")
    proposals = dict.fromkeys(p for r in registrations() for p in r.proposals)
    p.add_argument(
        "--proposal",
        choices=tuple(proposals),
        default=None,
        help="proposal of importance or ais (default: guide when the model has one, else prior)",
    )
    budgets = "; ".join(
        f"{r.name}: {r.budget}, default {r.default_budget}" for r in registrations() if r.budget != "none"
    )
    p.add_argument("--particles", type=int, default=None, help=f"budget per answer ({budgets})")
    p.add_argument("--steps", type=int, default=None, help="ais: annealing steps (default 48)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument(
        "--out",
        default=None,
        help="write to this file instead of stdout; FILE.nc: ArviZ InferenceData with the log weights",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument(
        "--max-rows",
        type=int,
        default=None,
        help="particle x answer rows evaluated at once: bounds memory (default 8192)",
    )
    p.add_argument("--device", default="cpu")
    add_seed(p)
    p.set_defaults(run=run)


def score_records(
    model,
    pairs,
    method: str,
    proposal: str | None = None,
    particles: int | None = None,
    progress: bool = False,
    max_rows: int | None = None,
    steps: int | None = None,
    seed: int = 0,
):
    """Run the registered estimator ``method`` over ``pairs`` (each answer keyed by its index in the input);
    returns its :class:`~retro.inference.results.Estimate`."""
    if particles is not None and particles < 1:
        raise RetroError(f"--particles must be >= 1, got {particles}")
    if max_rows is not None and max_rows < 1:
        raise RetroError(f"--max-rows must be >= 1, got {max_rows}")
    if steps is not None and steps < 1:
        raise RetroError(f"--steps must be >= 1, got {steps}")
    options = {} if steps is None else {"num_steps": steps}
    return estimate(
        f"{method}[{proposal}]" if proposal else method,
        model.program,
        pairs.questions,
        pairs.answers,
        guide=model.guide,
        num_particles=particles,
        seed=seed,
        answer_ids=range(len(pairs.answers)),
        max_rows=max_rows or DEFAULT_MAX_ROWS,
        progress=progress,
        **options,
    )


def run(args) -> int:
    if not args.out:
        return _run(args)
    inputs = [data_file(args.data), None if args.model.startswith("human:") else args.model]
    check_output_file(args.out, args.overwrite, inputs)  # before any work
    with lock_output(args.out, directory=False):
        return _run(args)


def _run(args) -> int:
    seed_everything(args.seed)
    model = load_model(args.model, args.device)
    pairs = load_data(args.data, model.program, args.n, args.seed)
    netcdf = bool(args.out) and args.out.endswith(".nc")
    records, info = score_records(
        model,
        pairs,
        args.method,
        args.proposal,
        args.particles,
        sys.stderr.isatty(),
        args.max_rows,
        args.steps,
        args.seed,
    )
    if netcdf:
        if info.log_weights is None:
            raise RetroError(
                f"{info.method} drew no importance weights to export to {args.out} "
                "(use --method importance, elbo or ais on a model with latents)"
            )
        from retro.inference.psis import to_inference_data

        data = to_inference_data(info.log_weights, records)
        atomic_write(args.out, data.to_netcdf)
    elif args.out:
        with atomic_open(args.out, "w", encoding="utf-8", newline="") as f:
            write_records([r.to_dict() for r in records], args.format, f)
    else:
        write_records([r.to_dict() for r in records], args.format)
    summary = summarize(records)
    line = (
        f"{summary.method}: mean log p {summary.log_prob_mean:.4f} +- {summary.stderr:.4f} nats per answer "
        f"over {summary.num_answers} answers (mean k-hat {summary.khat_mean:.3f})"
    )
    # A table on the terminal ends with its summary; machine-readable output stays pure.
    print(line, file=sys.stdout if args.format == "table" and not args.out else sys.stderr)
    return 0
