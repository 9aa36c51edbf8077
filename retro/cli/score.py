"""``retro score``: per-answer log p(answer | question) estimates with standard errors and diagnostics."""

from __future__ import annotations

import sys

from retro.atomic import atomic_open, atomic_write
from retro.cli.common import (
    FORMATS,
    add_base,
    add_seed,
    load_data,
    load_model,
    seed_everything,
    warn_unreliable,
    write_records,
)
from retro.cli.progress import add_quiet, show_progress
from retro.data import data_file
from retro.errors import RetroError
from retro.inference import estimate, method_names, registrations, summarize
from retro.inference.log_weights import DEFAULT_MAX_ROWS
from retro.inference.scoring import DEFAULT_CHUNK_SIZE
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
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help="score the first N pairs, or draw N from a human (default: all; 1000)",
    )
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
        "choose, fresh draws are reported); --particles is then the maximum (default: off, a fixed budget)",
    )
    p.add_argument(
        "--certify",
        type=float,
        default=None,
        metavar="DELTA",
        help="also write, per answer, a lower bound on log p that holds with probability >= 1 - DELTA "
        "(records of kind 'certified'; default: off)",
    )
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument(
        "--out",
        default=None,
        help="write to this file instead of stdout; FILE.nc: ArviZ InferenceData with the log weights "
        "(default: stdout)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument(
        "--max-rows",
        type=int,
        default=None,
        help="particle x answer rows evaluated at once: bounds memory (default 8192)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"answers per chunk: each chunk is written when finished (default {DEFAULT_CHUNK_SIZE}); an answer's "
        "random draws are keyed by the seed and its place in the input, whatever the chunks",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run into the same --out (JSONL/CSV) from its last finished chunk",
    )
    p.add_argument("--device", default="cpu")
    add_quiet(p)
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
    first_index: int = 0,
):
    """Run the registered estimator ``method`` over ``pairs`` (each answer keyed by its index in the input, the
    first being answer ``first_index``); returns its :class:`~retro.inference.results.Estimate`."""
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
        answer_ids=range(first_index, first_index + len(pairs.answers)),
        max_rows=max_rows or DEFAULT_MAX_ROWS,
        progress=progress,
        certify=certify,
        target_stderr=target_stderr,
        **options,
    )


LEDGER_SETTINGS = ("model", "data", "n", "method", "proposal", "particles", "steps", "max_rows", "device")


def _validated(pairs, program):
    """The stream of pairs, each checked against the model's codecs and maximum length as it comes."""
    from retro.data import Pairs

    for question, answer, where in pairs:
        Pairs([question], [answer], [where]).validate(
            program.codec, program.max_length, program.question_codec
        )
        yield question, answer, where


def run(args) -> int:
    from retro.distributed import join_from_environment, leave

    world = join_from_environment()
    try:
        if not args.out:
            return _run(args, world)
        inputs = [data_file(args.data), None if args.model.startswith("human:") else args.model]
        check_output_file(args.out, args.overwrite, inputs)  # before any work
        with lock_output(args.out, directory=False):  # rank 0 holds it, for the whole run (.partial included)
            return _run(args, world)
    finally:
        leave()


def _chunk_scorer(model, args, progress: bool = False):
    from retro.data import Pairs

    def score(questions, answers, first_index):
        pairs = Pairs(questions, answers, [""] * len(answers))
        records, _ = score_records(
            model,
            pairs,
            args.method,
            args.proposal,
            args.particles,
            progress,  # a bar per chunk, with its time left
            args.max_rows,
            args.steps,
            args.seed,
            first_index=first_index,
        )
        return records

    return score


def _print_summary(summary, to_stdout: bool) -> None:
    line = (
        f"{summary.method}: mean log p {summary.log_prob_mean:.4f} +- {summary.stderr:.4f} nats per answer "
        f"over {summary.num_answers} answers (mean k-hat {summary.khat_mean:.3f})"
    )
    # A table on the terminal ends with its summary; machine-readable output stays pure.
    print(line, file=sys.stdout if to_stdout else sys.stderr)
    warn_unreliable("score", summary.unreliable, summary.num_answers)


def _run(args, world) -> int:
    """Stream the answers chunk by chunk (shared across ranks under torchrun); rank 0 writes."""
    from retro.data import iter_pairs
    from retro.inference.scoring import record_from_dict, score_chunks, score_to_file

    seed_everything(args.seed)
    model = load_model(args.model, args.device, base=args.base)
    netcdf = bool(args.out) and args.out.endswith(".nc")
    if netcdf or args.certify is not None or args.target_stderr is not None:
        if world.size > 1 or args.resume:
            raise RetroError(
                "--out FILE.nc, --certify and --target-stderr run in one process, in memory "
                "(without torchrun and --resume)"
            )
        return _run_in_memory(args, model)
    if args.resume and (not args.out or args.format not in ("jsonl", "csv")):
        raise RetroError("--resume continues a JSONL or CSV --out file")
    chunk_size = args.batch_size or DEFAULT_CHUNK_SIZE
    pairs = _validated(iter_pairs(args.data, args.n, args.seed), model.program)
    score = _chunk_scorer(model, args, show_progress(args) and world.size == 1)
    if args.out:
        settings = {k: getattr(args, k) for k in LEDGER_SETTINGS}
        summary = score_to_file(
            score, pairs, args.out, args.format, settings, chunk_size, args.seed, args.resume, world
        )
        if summary is not None:
            _print_summary(summary, to_stdout=False)
        return 0
    rows = [row for chunk in score_chunks(score, pairs, chunk_size, args.seed, world) for row in chunk]
    if world.is_main:
        write_records(rows, args.format)
        _print_summary(summarize([record_from_dict(row) for row in rows]), args.format == "table")
    return 0


def _run_in_memory(args, model) -> int:
    """One process, everything in memory: NetCDF log weights, certified bounds, adaptive budgets."""
    pairs = load_data(args.data, model.program, args.n, args.seed)
    netcdf = bool(args.out) and args.out.endswith(".nc")
    records, info = score_records(
        model,
        pairs,
        args.method,
        args.proposal,
        args.particles,
        show_progress(args),
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

        data = to_inference_data(info.log_weights, records)
        atomic_write(args.out, data.to_netcdf)
    rows = [r.to_dict() for r in records + (info.certified or [])]
    if args.out and not netcdf:
        with atomic_open(args.out, "w", encoding="utf-8", newline="") as f:
            write_records(rows, args.format, f)
    elif not netcdf:
        write_records(rows, args.format)
    summary = summarize(records)
    line = (
        f"{summary.method}: mean log p {summary.log_prob_mean:.4f} +- {summary.stderr:.4f} nats per answer "
        f"over {summary.num_answers} answers (standard error of the mean, of which Monte Carlo "
        f"{summary.mc_stderr:.4f}; mean k-hat {summary.khat_mean:.3f})"
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
    warn_unreliable("score", summary.unreliable, summary.num_answers)
    return 0
