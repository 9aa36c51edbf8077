"""The command line's argument parser: usage errors as one line (exit status 2), every default in ``--help``.

argparse prints a usage block and exits on a bad flag; retro's promise is one line naming what is wrong, so the
parser raises :class:`UsageError` instead (``retro.cli.main`` prints it, exit status 2), an unknown flag is named
with the closest known one, and each option's help ends with its default.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterator, Sequence

from retro.errors import RetroError

__all__ = [
    "UsageError",
    "RetroArgumentParser",
    "show_defaults",
    "unknown_arguments_error",
    "subcommand_parsers",
]


class UsageError(RetroError):
    """A command line that does not parse: an unknown flag, a bad value, a missing required flag."""


class RetroArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a :class:`UsageError` (one line) rather than usage and exit."""

    def error(self, message: str):  # argparse's hook for every parse error
        raise UsageError(f"{self.prog}: error: {message.splitlines()[0]}")


def subcommand_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every parser below it (commands, and sub-commands such as ``retro experiment sudoku``)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                yield from subcommand_parsers(child)


def _shows_default(action: argparse.Action) -> bool:
    """Whether the option has a default worth printing (flags that only switch something on do not)."""
    if not action.option_strings or action.required or action.default is argparse.SUPPRESS:
        return False
    return not isinstance(
        action,
        (
            argparse._HelpAction,
            argparse._StoreTrueAction,
            argparse._StoreFalseAction,
            argparse._VersionAction,
        ),
    )


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """End the help of every option of ``parser`` and its sub-commands with its default, unless it states one.

    A default of ``None`` means "decided at run time": its help must say how, in words (a test checks that).
    """
    for sub in subcommand_parsers(parser):
        for action in sub._actions:
            if not _shows_default(action) or action.default is None:
                continue
            text = action.help or ""
            if "default" in text:
                continue
            shown = str(action.default).replace("%", "%%")
            action.help = f"{text} (default {shown})" if text else f"default {shown}"


def unknown_arguments_error(parser: argparse.ArgumentParser, extras: Sequence[str]) -> UsageError:
    """A one-line error for arguments ``parser`` does not know, naming the closest known flag."""
    first = extras[0]
    if not first.startswith("-"):
        return UsageError(f"{parser.prog}: error: unexpected argument {first!r}")
    flag = first.split("=", 1)[0]
    known = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
    close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else f" (see {parser.prog} --help)"
    return UsageError(f"{parser.prog}: error: unknown flag {flag}{hint}")
