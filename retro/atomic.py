"""Crash-consistent file output: write a temporary file beside the target, flush it, rename it into place.

A reader (or a process killed at any moment) sees the old file or the new one, never a truncated mix, and a
symlink at the target is replaced by the new file, never followed (its target is left alone).

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_open(path) as f:
    ...     _ = f.write("hello")
    >>> path.read_text()
    'hello'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from retro.errors import RetroError

__all__ = ["atomic_write", "atomic_open", "fsync_directory", "TEMP_SUFFIX", "temp_prefix"]

TEMP_SUFFIX = ".tmp"


def temp_prefix(name: str) -> str:
    """The prefix of the temporary files that stand in for ``name`` while it is written (``.NAME.``)."""
    return f".{name}."


def fsync_directory(directory: str | os.PathLike) -> None:
    """Flush a directory's entries (a rename) to disk, where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temp(path: Path) -> tuple[int, str]:
    """A temporary file beside ``path`` with the permissions a plain ``open`` would give (mkstemp's are 0600)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=TEMP_SUFFIX)
    except OSError as e:
        raise RetroError(f"cannot write {str(path)!r}: {e.strerror or e}") from None
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)
    except OSError:
        pass
    return fd, tmp


@contextmanager
def _replacing(path: Path) -> Iterator[tuple[int, str]]:
    """A temporary file beside ``path`` (its descriptor and name) for the block to fill and flush; then it is renamed
    to ``path``. Any failure leaves ``path`` as it was and removes the temporary file; an ``OSError`` becomes a
    one-line :class:`~retro.errors.RetroError` naming ``path``."""
    fd, tmp = _create_temp(path)
    try:
        yield fd, tmp
        os.replace(tmp, path)
        fsync_directory(path.parent)
    except OSError as e:
        raise RetroError(f"cannot write {str(path)!r}: {e.strerror or e}") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, flush it, then rename it to ``path``.

    Any failure leaves ``path`` as it was and removes the temporary file; an ``OSError`` (a missing or read-only
    directory, a full disk) becomes a one-line :class:`~retro.errors.RetroError` naming ``path``.
    """
    with _replacing(Path(path)) as (fd, tmp):
        os.close(fd)
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())


@contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8", **kwargs
) -> Iterator[IO]:
    """``open`` for writing through a temporary file: ``path`` appears, complete, only when the block succeeds."""
    if "b" in mode:
        encoding = None
    with _replacing(Path(path)) as (fd, tmp):
        with os.fdopen(fd, mode, encoding=encoding, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
