"""The output directory of a training run (``retro train --out``): what is in it, and how it is replaced.

A run directory holds the best checkpoint (``config.json`` and the weights it names), ``history.jsonl`` and the
training state ``state/``. Nothing is lost by pointing ``--out`` at the wrong place: a directory holding any of
those names is refused unless the user asked to replace it, and then only if it is a retro run; the previous run's
files are removed only after the new run has checked its inputs, and only those retro wrote. A symbolic link at any
of those names is refused (retro would otherwise write or delete through it).

Example:
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> check_run_directory(out, overwrite=False)  # empty: fine
    False
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from retro.atomic import atomic_write
from retro.checkpoint import CONFIG_FILE, CheckpointError, read_config, remove_checkpoint
from retro.errors import RetroError
from retro.inference.train_state import STATE_FORMAT
from retro.inference.trained import FORMAT as TRAINED_FORMAT
from retro.safepaths import refuse_symlink

__all__ = ["STATE_DIR", "HISTORY_FILE", "check_run_directory", "clear_previous_run", "open_history"]

STATE_DIR = "state"  # inside --out: the training state that --resume continues from
HISTORY_FILE = "history.jsonl"
RUN_NAMES = (CONFIG_FILE, HISTORY_FILE, STATE_DIR)


def _format_of(directory: Path) -> Any:
    try:
        return read_config(directory).get("format")
    except CheckpointError:
        return None


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
    is_run = _format_of(out) == TRAINED_FORMAT or (
        (out / STATE_DIR).is_dir() and _format_of(out / STATE_DIR) == STATE_FORMAT
    )
    if not is_run:
        raise RetroError(
            f"--out {str(out)!r} holds {', '.join(present)} but is not a retro run (no retro config.json); "
            "--overwrite replaces only what retro wrote: choose another --out"
        )
    return True


def clear_previous_run(out: str | os.PathLike) -> None:
    """Remove the previous run's training state (only the files retro wrote), so ``--resume`` cannot pick it up.

    The previous best checkpoint is replaced by the new run's first one, and ``history.jsonl`` by
    :func:`open_history`.
    """
    state = Path(out) / STATE_DIR
    refuse_symlink(state, "in --out,")
    if state.is_dir() and _format_of(state) == STATE_FORMAT:
        remove_checkpoint(state)


def open_history(out: str | os.PathLike, rows: Iterable[dict[str, Any]] = ()) -> TextIO:
    """``out/history.jsonl`` holding ``rows``, open for appending more.

    The file is replaced (temporary file + rename; a symbolic link there is replaced, its target left alone), then
    opened without following links.
    """
    path = Path(out) / HISTORY_FILE
    text = "".join(json.dumps(row) + "\n" for row in rows)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    except OSError as e:
        raise RetroError(f"cannot open {str(path)!r}: {e.strerror or e}") from None
    return os.fdopen(fd, "a", encoding="utf-8")
