"""``retro experiment``: the reproducible experiments (steganography, Sudoku) as JSON or a table."""

from __future__ import annotations

import json
import sys

from retro.cli.common import add_seed, json_ready, seed_everything, write_records


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "experiment",
        help="run an experiment: steganography or sudoku",
        description="Experiments that measure what retrodiction and adversarial judgement each can see.",
    )
    which = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    stego = which.add_parser(
        "steganography",
        help="an imitator hiding b bits per answer: discriminator accuracy, decoding accuracy, log p drop",
    )
    stego.add_argument("--bits", default="0,1,2,3,4", help="numbers of hidden bits (default 0,1,2,3,4)")
    stego.add_argument(
        "--smoothing",
        type=float,
        default=0.02,
        help="share of honest answers (default 0.02; 0: log p = -inf)",
    )
    stego.add_argument("--train", type=int, default=2000, help="training pairs per side (default 2000)")
    stego.add_argument("--test", type=int, default=1000, help="test pairs per side (default 1000)")
    stego.add_argument("--disc-steps", type=int, default=300)
    sudoku = which.add_parser(
        "sudoku",
        help="Sudoku puzzles with several solutions: verifier discriminator, log p by model counting",
    )
    sudoku.add_argument("--puzzles", type=int, default=300, help="4x4 puzzles (default 300)")
    sudoku.add_argument(
        "--puzzles-9x9", type=int, default=20, help="9x9 puzzles with few givens (default 20)"
    )
    sudoku.add_argument("--train-steps", type=int, default=1500, help="neural imitator training steps")
    sudoku.add_argument("--disc-steps", type=int, default=300)
    for command in (stego, sudoku):
        command.add_argument("--format", choices=("json", "table"), default="table")
        add_seed(command)
    p.set_defaults(run=run)


def _steganography(args) -> dict:
    from retro.errors import RetroError
    from retro.experiments.steganography import run_steganography

    try:
        bits = tuple(int(b) for b in args.bits.split(","))
    except ValueError:
        raise RetroError(f"--bits must be comma-separated integers, got {args.bits!r}") from None
    rows = run_steganography(
        bits, args.smoothing, args.train, args.test, args.disc_steps, args.seed, sys.stderr.isatty()
    )
    return {"experiment": "steganography", "seed": args.seed, "rows": [r.to_dict() for r in rows]}


def _sudoku(args) -> dict:
    from retro.experiments.sudoku import run_sudoku

    result = run_sudoku(
        num_puzzles=args.puzzles,
        num_puzzles_9x9=args.puzzles_9x9,
        train_steps=args.train_steps,
        disc_steps=args.disc_steps,
        seed=args.seed,
        progress=sys.stderr.isatty(),
    )
    return {"experiment": "sudoku", "seed": args.seed, **result}


def run(args) -> int:
    seed_everything(args.seed)
    result = _steganography(args) if args.experiment == "steganography" else _sudoku(args)
    if args.format == "json":
        print(json.dumps(json_ready(result)))
    else:
        write_records(result["rows"], "table")
        for key, rows in result.items():
            if key.endswith("_rows"):
                print(f"\n{key}:")
                write_records(rows, "table")
    return 0
