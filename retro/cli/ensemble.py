"""``retro ensemble``: combine trained models into one ensemble checkpoint (:mod:`retro.inference.ensemble`)."""

from __future__ import annotations

from retro.errors import RetroError

__all__ = ["register", "run"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ensemble",
        help="combine trained models into one ensemble (a token-level mixture)",
        description="Combine trained models into one self-contained checkpoint: an ensemble whose next-token "
        "distribution is the average of the members' at every position. Its log p is scored exactly (no latents) "
        "or estimated like any model's, and beam search decodes the same mixture. The members must share the "
        "answer codec, the question codec and max_length.",
    )
    p.add_argument(
        "--models",
        nargs="+",
        required=True,
        metavar="DIR",
        help="directories written by 'retro train' (2 or more)",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="directory to write the ensemble checkpoint into"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace a previous retro run or checkpoint in --out"
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from retro.inference.ensemble import combine_trained
    from retro.inference.run_directory import check_run_directory, clear_previous_run
    from retro.models.ensemble import check_member_count
    from retro.outlock import locked_output_directory
    from retro.safepaths import check_output_directory, is_same_or_inside

    check_member_count(len(args.models), "models")  # before any work
    out = check_output_directory(args.out, args.models, "--out")
    replacing = check_run_directory(out, args.overwrite)
    inside = [model for model in args.models if replacing and is_same_or_inside(model, out)]
    if inside:  # replacing the run in --out removes its members and state
        raise RetroError(
            f"--models {inside[0]!r} is inside --out {str(out)!r}, which is replaced: choose another"
        )
    with locked_output_directory(out):  # a failed combination leaves no empty directory behind
        combine_trained(args.models, out)
        if replacing:  # the replaced run's training state must not be resumed into the ensemble
            clear_previous_run(out)
    print(f"wrote an ensemble of {len(args.models)} models to {out}")
    return 0
