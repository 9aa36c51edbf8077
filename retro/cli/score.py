"""``retro score``: per-answer log p(answer | question) estimates with standard errors and diagnostics."""

from __future__ import annotations

import sys

from retro.atomic import atomic_open, atomic_write
from retro.cli.common import FORMATS, add_seed, load_data, load_model, seed_everything, write_records
from retro.data import data_file
from retro.errors import RetroError
from retro.inference.results import summarize
from retro.outlock import lock_output
from retro.safepaths import check_output_file

METHODS = ("exact", "elbo", "importance", "ais")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score",
        help="estimate log p(answer | question) for each answer",
        description="Estimate log p(answer | question) for each human answer.",
    )
    p.add_argument("--model", required=True, help="directory written by 'retro train', or human:NAME")
    p.add_argument("--data", required=True, help="JSONL/CSV with question and answer fields, or human:NAME")
    p.add_argument("--n", type=int, default=None, help="score the first N pairs (or draw N from a human)")
    p.add_argument("--method", choices=METHODS, default="importance")
    p.add_argument(
        "--proposal",
        choices=("guide", "prior", "mixture"),
        default=None,
        help="importance proposal (default: guide when the model has one, else prior)",
    )
    p.add_argument(
        "--particles",
        type=int,
        default=None,
        help="particles per answer (default 1000; elbo 100; ais: chains, default 64)",
    )
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
    proposal: str | None,
    particles: int | None,
    progress: bool,
    max_rows: int | None = None,
    steps: int | None = None,
):
    """Run one estimator over ``pairs``; returns the per-answer records and the log weights (importance only)."""
    from retro.inference import elbo, exact
    from retro.inference.importance import importance_with_weights
    from retro.inference.weights import DEFAULT_MAX_ROWS

    if particles is not None and particles < 1:
        raise RetroError(f"--particles must be >= 1, got {particles}")
    if max_rows is not None and max_rows < 1:
        raise RetroError(f"--max-rows must be >= 1, got {max_rows}")
    max_rows = max_rows or DEFAULT_MAX_ROWS
    q, a = pairs.questions, pairs.answers
    if method == "exact":
        return exact(model.program, q, a, max_rows=max_rows), None
    if method == "elbo":
        if model.guide is None:
            raise RetroError(
                f"model {model.spec} has no trained guide, which the ELBO needs (try importance)"
            )
        records = elbo(
            model.program,
            q,
            a,
            guide=model.guide,
            num_particles=particles or 100,
            progress=progress,
            max_rows=max_rows,
        )
        return records, None
    proposal = proposal or ("guide" if model.guide is not None else "prior")
    if method == "ais":
        from retro.inference.ais import DEFAULT_NUM_CHAINS, DEFAULT_NUM_STEPS, ais

        if proposal == "mixture":
            raise RetroError("ais anneals from the prior or the guide: use --proposal prior or guide")
        if steps is not None and steps < 1:
            raise RetroError(f"--steps must be >= 1, got {steps}")
        records = ais(
            model.program,
            q,
            a,
            guide=model.guide,
            proposal=proposal,
            num_steps=steps or DEFAULT_NUM_STEPS,
            num_chains=particles or DEFAULT_NUM_CHAINS,
            max_rows=max_rows,
            progress=progress,
        )
        return records, None
    if proposal != "prior" and model.guide is None:
        raise RetroError(f"model {model.spec} has no trained guide; use --proposal prior")
    return importance_with_weights(
        model.program,
        q,
        a,
        guide=model.guide,
        proposal=proposal,
        num_particles=particles or 1000,
        max_rows=max_rows,
        progress=progress,
    )


def run(args) -> int:
    if args.out and args.out.endswith(".nc") and args.method != "importance":
        raise RetroError("--out FILE.nc holds importance weights: use it with --method importance")
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
    records, log_weights = score_records(
        model,
        pairs,
        args.method,
        args.proposal,
        args.particles,
        sys.stderr.isatty(),
        args.max_rows,
        args.steps,
    )
    if netcdf:
        if log_weights is None:
            raise RetroError(
                f"model {model.spec} has no latents, so there are no importance weights to export"
            )
        from retro.inference.psis import to_inference_data

        data = to_inference_data(log_weights, records)
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
