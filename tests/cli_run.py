"""Run the ``retro`` command line in-process, as the CLI tests do."""

from __future__ import annotations

import shlex

from retro.cli import main


def run_cli(capsys, command: str | list[str]) -> tuple[int, str, str]:
    """``retro COMMAND`` in-process: (exit status, stdout, stderr)."""
    argv = shlex.split(command) if isinstance(command, str) else command
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err
