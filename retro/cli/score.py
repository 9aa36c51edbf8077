"""``retro score``: per-answer log p(answer | question) estimates with standard errors and diagnostics."""

from __future__ import annotations

import sys

from retro.cli.common import (
    FORMATS,
    add_base,
    add_seed,
    load_data,
    load_model,
    seed_everything,
    write_records,
)
from retro.errors import RetroError
from retro.inference import estimate, method_names, registrations, summarize
from retro.inference.weights import DEFAULT_MAX_ROWS


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
    p.add_argument(
        "--target-stderr",
        type=float,
        default=None,
        metavar="S",
        help="adaptive budgets: per answer, as many particles as a standard error of S nats needs (pilot draws "
        "choose, fresh draws are reported); --particles is then the maximum",
    )
    p.add_argument(
        "--certify",
        type=float,
        default=None,
        metavar="DELTA",
        help="also write, per answer, a lower bound on log p that holds with probability >= 1 - DELTA "
        "(records of kind 'certified')",
    )
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument(
        "--out",
        default=None,
        help="write to this file instead of stdout; FILE.nc: ArviZ InferenceData with the log weights",
    )
    p.add_argument(
        "--max-rows",
        type=int,
        default=None,
        help="particle x answer rows evaluated at once: bounds memory (default 8192)",
    )
    p.add_argument("--device", default="cpu")
    add_seed(p)
    add_base(p)
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
    certify: float | None = None,
    target_stderr: float | None = None,
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
        certify=certify,
        target_stderr=target_stderr,
        **options,
    )


def run(args) -> int:
    seed_everything(args.seed)
    model = load_model(args.model, args.device, base=args.base)
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
        args.certify,
        args.target_stderr,
    )
    if netcdf:
        if info.log_weights is None:
            raise RetroError(
                f"{info.method} drew no importance weights to export to {args.out} "
                "(use --method importance, elbo or ais on a model with latents)"
            )
        from retro.inference.psis import to_inference_data

        to_inference_data(info.log_weights, records).to_netcdf(args.out)
    rows = [r.to_dict() for r in records + (info.certified or [])]
    if args.out and not netcdf:
        with open(args.out, "w", encoding="utf-8", newline="") as f:
            write_records(rows, args.format, f)
    elif not netcdf:
        write_records(rows, args.format)
    summary = summarize(records)
    line = (
        f"{summary.method}: mean log p {summary.log_prob_mean:.4f} +- {summary.stderr:.4f} nats per answer "
        f"over {summary.num_answers} answers (mean k-hat {summary.khat_mean:.3f})"
    )
    if info.certified:
        bound = sum(r.log_prob for r in info.certified) / len(info.certified)
        line += (
            f"; mean certified lower bound {bound:.4f} (each holds with probability >= {1 - args.certify:g})"
        )
    if args.target_stderr is not None and "particles" in info.diagnostics:
        used = info.diagnostics["particles"].double()
        pilot = info.diagnostics["pilot_particles"].double()
        line += f"; particles per answer {used.mean():.1f} (+ {pilot.mean():.1f} in pilots)"
    # A table on the terminal ends with its summary; machine-readable output stays pure.
    print(line, file=sys.stdout if args.format == "table" and not args.out else sys.stderr)
    return 0
