"""The output directory of a training run (``retro train --out``): what is in it, and how it is replaced.

A run directory holds the best checkpoint (``config.json`` and the weights it names), ``history.jsonl`` and the
training state ``state/``; a run of ``retro train --members`` also holds ``members/`` (member ``K``'s run in
``members/K``, its log in ``members/K.log``). Nothing is lost by pointing ``--out`` at the wrong place: a directory holding any of
those names is refused unless the user asked to replace it, and then only if it is a retro run; the previous run's
files are removed only after the new run has checked its inputs, and only those retro wrote. A symbolic link at any
of those names is refused (retro would otherwise write or delete through it), and so is anything in ``members/``
that is not a member run or log retro wrote.

Example:
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> check_run_directory(out, overwrite=False)  # empty: fine
    False
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from retro.atomic import atomic_write
from retro.checkpoint import CONFIG_FILE, CheckpointError, read_config, remove_checkpoint
from retro.errors import RetroError
from retro.inference.train_state import STATE_FORMAT
from retro.inference.trained import FORMAT as TRAINED_FORMAT
from retro.safepaths import open_for_appending, refuse_symlink

__all__ = [
    "STATE_DIR",
    "HISTORY_FILE",
    "MEMBERS_DIR",
    "check_run_directory",
    "clear_previous_run",
    "open_history",
]

STATE_DIR = "state"  # inside --out: the training state that --resume continues from
HISTORY_FILE = "history.jsonl"
MEMBERS_DIR = "members"  # inside --out of retro train --members: members/K (a run), members/K.log
RUN_NAMES = (CONFIG_FILE, HISTORY_FILE, STATE_DIR, MEMBERS_DIR)
MEMBER_NAME = re.compile(r"[0-9]+")
MEMBER_LOG_NAME = re.compile(r"[0-9]+\.log")


def _format_of(directory: Path) -> Any:
    try:
        return read_config(directory).get("format")
    except CheckpointError:
        return None


def _is_state(directory: Path) -> bool:
    state = directory / STATE_DIR
    return not state.is_symlink() and state.is_dir() and _format_of(state) == STATE_FORMAT


def _is_retro_run(directory: Path) -> bool:
    """Whether ``directory`` holds a retro checkpoint or a retro training state."""
    return _format_of(directory) == TRAINED_FORMAT or _is_state(directory)


def _is_retro_member(entry: Path) -> bool:
    """A member's run (``K``: a retro run, or a run stopped before its first checkpoint: nothing but
    ``history.jsonl``) or a member's log (``K.log``), none of them a symbolic link."""
    if entry.is_symlink():
        return False
    if MEMBER_LOG_NAME.fullmatch(entry.name):
        return entry.is_file()
    if not MEMBER_NAME.fullmatch(entry.name) or not entry.is_dir():
        return False
    return _is_retro_run(entry) or all(
        p.name == HISTORY_FILE and not p.is_symlink() and p.is_file() for p in entry.iterdir()
    )


def _member_entries(out: Path) -> list[Path]:
    """What ``out/members`` holds, every entry a member run or log retro wrote.

    Raises:
        RetroError: ``members`` is a symbolic link or not a directory, or holds anything else.
    """
    members = out / MEMBERS_DIR
    refuse_symlink(members, "in --out,")
    if not os.path.lexists(members):
        return []
    entries = sorted(members.iterdir()) if members.is_dir() else [members]
    for entry in entries:
        if entry == members or not _is_retro_member(entry):
            raise RetroError(
                f"--out {str(out)!r}: {str(entry)!r} is not a member run retro wrote; --overwrite replaces only "
                "what retro wrote: choose another --out"
            )
    return entries


def check_run_directory(out: str | os.PathLike, overwrite: bool) -> bool:
    """Check that a new run may write into ``out``; return whether it holds a previous retro run to replace.

    Raises:
        RetroError: a name the run writes is a symbolic link; ``out`` holds files of a run (or of something else
            under those names) and ``overwrite`` is false; or ``overwrite`` is true and ``out`` is not a retro run.
    """
    out = Path(out)
    for name in RUN_NAMES:
        refuse_symlink(out / name, "in --out,")
    present = [name for name in RUN_NAMES if os.path.lexists(out / name)]
    present += sorted(p.name for p in out.glob("weights*.safetensors")) if out.is_dir() else []
    if not present:
        return False
    if not overwrite:
        raise RetroError(
            f"--out {str(out)!r} already holds {', '.join(present)}; pass --overwrite to replace a previous run"
        )
    members = _member_entries(out)
    is_run = _is_retro_run(out) or (bool(members) and not os.path.lexists(out / CONFIG_FILE))
    if not is_run:
        raise RetroError(
            f"--out {str(out)!r} holds {', '.join(present)} but is not a retro run (no retro config.json); "
            "--overwrite replaces only what retro wrote: choose another --out"
        )
    return True


def _remove_run(directory: Path, checkpoint: bool) -> None:
    """Remove the training state and history of the run in ``directory``, and its checkpoint if asked."""
    for name in (STATE_DIR, HISTORY_FILE, CONFIG_FILE):
        refuse_symlink(directory / name, "in --out,")
    if _is_state(directory):
        remove_checkpoint(directory / STATE_DIR)
    if (directory / HISTORY_FILE).is_file():
        (directory / HISTORY_FILE).unlink()
    if checkpoint and _format_of(directory) == TRAINED_FORMAT:
        remove_checkpoint(directory)


def clear_previous_run(out: str | os.PathLike, checkpoint: bool = False) -> None:
    """Remove what the previous run in ``out`` wrote that a new run does not replace (only the files retro
    wrote), so ``--resume`` cannot pick it up: its training state, ``history.jsonl`` and member runs and logs
    (``members/``); its best checkpoint too when ``checkpoint`` is true (else the new run's first one replaces it).

    Raises:
        RetroError: a symbolic link among those names, or ``members/`` holds what retro did not write.
    """
    out = Path(out)
    members = _member_entries(out)
    _remove_run(out, checkpoint)
    for entry in members:
        if entry.is_dir():
            _remove_run(entry, checkpoint=True)
            _remove_if_empty(entry)
        else:
            entry.unlink()
    if members:
        _remove_if_empty(out / MEMBERS_DIR)


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:  # already gone, or it holds what retro did not write
        pass


def open_history(out: str | os.PathLike, rows: Iterable[dict[str, Any]] = ()) -> TextIO:
    """``out/history.jsonl`` holding ``rows``, open for appending more.

    The file is replaced (temporary file + rename; a symbolic link there is replaced, its target left alone), then
    opened without following links.
    """
    path = Path(out) / HISTORY_FILE
    text = "".join(json.dumps(row) + "\n" for row in rows)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return open_for_appending(path)
