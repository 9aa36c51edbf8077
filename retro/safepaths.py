"""Path checks for untrusted names and for outputs: nothing read from a file names a path outside its directory,
and no output lands on an input or on a file retro was not told to replace.

Example:
    >>> import tempfile
    >>> member_path(tempfile.gettempdir(), "../etc/passwd", "weights file")
    Traceback (most recent call last):
    ...
    retro.safepaths.UnsafePathError: weights file '../etc/passwd' is not a plain file name ...
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from retro.errors import RetroError

__all__ = [
    "UnsafePathError",
    "member_path",
    "refuse_symlink",
    "is_same_or_inside",
    "check_output_file",
    "check_output_directory",
    "open_for_appending",
]


class UnsafePathError(RetroError):
    """A name read from a file points outside its directory, or an output would clobber what it must not."""


def member_path(directory: str | os.PathLike, name: object, what: str) -> Path:
    """``directory / name`` for a ``name`` read from a file, which must be a plain file name in ``directory``.

    Refused: a non-string, an empty name, ``.``/``..``, any path separator, a NUL, and an existing symbolic link
    (which could point anywhere).
    """
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or os.path.basename(name) != name
    ):
        raise UnsafePathError(
            f"{what} {name!r} is not a plain file name (a file in the same directory, no '/', no '..')"
        )
    path = Path(directory) / name
    refuse_symlink(path, what)
    return path


def refuse_symlink(path: str | os.PathLike, what: str) -> None:
    """Raise if ``path`` is a symbolic link: retro neither reads nor writes through one inside its outputs."""
    if os.path.islink(path):
        raise UnsafePathError(
            f"{what} {str(path)!r} is a symbolic link; retro follows none inside its directories"
        )


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def is_same_or_inside(path: str | os.PathLike, other: str | os.PathLike) -> bool:
    """Whether ``path`` is ``other`` (the same file, through any links) or lies inside the directory ``other``."""
    try:
        if os.path.exists(path) and os.path.exists(other) and os.path.samefile(path, other):
            return True
    except OSError:
        pass
    a, b = _resolved(path), _resolved(other)
    return a == b or b in a.parents


def _check_inputs(out: Path, inputs: Iterable[str | os.PathLike | None], flag: str) -> None:
    for source in inputs:
        if source is not None and is_same_or_inside(out, source):
            raise UnsafePathError(
                f"{flag} {str(out)!r} is an input of this run ({str(source)!r}); choose another"
            )


def check_output_file(
    out: str | os.PathLike,
    overwrite: bool,
    inputs: Iterable[str | os.PathLike | None] = (),
    flag: str = "--out",
) -> Path:
    """Check, before any work, that the output file ``out`` can be written and may be.

    Refused: an input of the run (even with ``overwrite``), a directory, an existing file without ``overwrite``,
    a symbolic link, and a missing or unwritable directory.
    """
    out = Path(out)
    _check_inputs(out, inputs, flag)
    if os.path.isdir(out):
        raise UnsafePathError(f"{flag} {str(out)!r} is a directory; give a file name")
    if os.path.lexists(out):
        if os.path.islink(out):
            raise UnsafePathError(f"{flag} {str(out)!r} is a symbolic link; give the file itself")
        if not overwrite:
            raise UnsafePathError(f"{flag} {str(out)!r} already exists; pass --overwrite to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UnsafePathError(f"{flag} {str(out)!r}: the directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UnsafePathError(f"{flag} {str(out)!r}: the directory {str(parent)!r} is not writable")
    return out


def check_output_directory(
    out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (), flag: str = "--out"
) -> Path:
    """Check, before any work, that ``out`` can be (or already is) a writable directory that is no input."""
    out = Path(out)
    _check_inputs(out, inputs, flag)
    if os.path.lexists(out) and not os.path.isdir(out):
        raise UnsafePathError(f"{flag} {str(out)!r} exists and is not a directory")
    existing = out
    while not os.path.exists(existing) and existing != existing.parent:
        existing = existing.parent if str(existing.parent) else Path(".")
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise UnsafePathError(f"{flag} {str(out)!r}: {str(existing)!r} is not a writable directory")
    return out


def open_for_appending(path: str | os.PathLike, create: bool = False) -> TextIO:
    """``path`` open for appending text (line-buffered), never through a symbolic link (``O_NOFOLLOW``).

    Args:
        path: the file; created when ``create`` is true and it does not exist.
        create: whether a missing file is created.

    Raises:
        RetroError: ``path`` is a symbolic link or cannot be opened (one line naming it).
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        raise RetroError(f"cannot open {str(path)!r}: {e.strerror or e}") from None
    return os.fdopen(fd, "a", buffering=1, encoding="utf-8")
