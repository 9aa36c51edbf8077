"""The ``retro`` command line: one module per command; errors are one line on stderr (exit status 2)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from retro.cli import (
    bdmc,
    compare,
    demo,
    ensemble,
    evaluate,
    experiment,
    listing,
    report,
    sample,
    score,
    train,
)
from retro.cli.parser import RetroArgumentParser, UsageError, show_defaults, unknown_arguments_error
from retro.cli.plugins import COMMANDS_WITH_PLUGINS, add_plugin_options, load_user_imitators
from retro.errors import RetroError

__all__ = ["main", "build_parser"]

COMMANDS = (
    demo,
    train,
    ensemble,
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


def build_parser() -> RetroArgumentParser:
    """The ``retro`` parser with every command; each option's help ends with its default."""
    parser = RetroArgumentParser(prog="retro", description="Train and score human imitators.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    for name in COMMANDS_WITH_PLUGINS:
        add_plugin_options(subparsers.choices[name])
    show_defaults(parser)
    return parser


def _parse(parser: RetroArgumentParser, argv: Sequence[str] | None):
    args, extras = parser.parse_known_args(argv)
    if extras:
        names = [args.command] + ([args.experiment] if getattr(args, "experiment", None) else [])
        target = parser
        for name in names:  # the (sub-)command whose flags the user was typing
            target = next(
                a for a in target._actions if a.dest in ("command", "experiment") and a.choices
            ).choices[name]
        raise unknown_arguments_error(target, extras)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = _parse(parser, argv)
    except UsageError as e:
        print(f"{e}", file=sys.stderr)
        return 2
    try:
        load_user_imitators(args)
        return args.run(args) or 0
    except RetroError as e:
        print(f"retro {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"retro {args.command}: interrupted", file=sys.stderr)
        return 130
