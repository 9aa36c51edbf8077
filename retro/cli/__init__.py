"""The ``retro`` command line: one module per command; errors are one line on stderr (exit status 2)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from retro.cli import bdmc, compare, demo, evaluate, experiment, listing, report, sample, score, train
from retro.errors import RetroError

__all__ = ["main"]

COMMANDS = (
    demo,
    train,
    score,
    evaluate,
    sample,
    compare,
    bdmc,
    report,
    experiment,
    listing.humans_command,
    listing.imitators_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retro", description="Train and score human imitators.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except RetroError as e:
        print(f"retro {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"retro {args.command}: interrupted", file=sys.stderr)
        return 130
