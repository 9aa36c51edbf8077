"""An operating-system lock on an output (``--out``), so two runs never write into one place at once.

The lock is ``flock`` on the output directory itself (for a directory output) or on a lock file beside the output
file (``.NAME.lock``, removed on release). The kernel drops it when the holding process dies, however it dies, so a
killed run leaves nothing that blocks a resumed one. Under ``torchrun`` only rank 0 (environment ``RANK``) takes
it: the other ranks of the same run are not a second run.

Example:
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> with lock_output(out, directory=True):
    ...     pass  # a second lock_output(out) here, from any process, raises OutputLockedError
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retro.errors import RetroError

__all__ = ["lock_output", "locked_output_directory", "OutputLockedError", "lock_file_for"]


class OutputLockedError(RetroError):
    """Another process holds the lock on this output."""


def lock_file_for(path: str | os.PathLike) -> Path:
    """The lock file that guards an output *file* (``DIR/.NAME.lock``)."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


def _flock(fd: int, what: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise OutputLockedError(
                f"{str(what)!r} is in use by another retro run (it holds the lock); wait for it or choose another --out"
            ) from None
        raise RetroError(f"cannot lock {str(what)!r}: {e.strerror or e}") from None


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


@contextmanager
def lock_output(path: str | os.PathLike, directory: bool, rank: int | None = None) -> Iterator[None]:
    """Hold an exclusive lock on the output ``path`` for the duration of the block, or fail at once.

    Args:
        path: the output directory (``directory=True``; it must exist) or output file (its directory must exist).
        directory: whether ``path`` is a directory output.
        rank: this process's rank; only rank 0 locks (default: the ``RANK`` environment variable, else 0).

    Raises:
        OutputLockedError: another process holds the lock.
    """
    if (rank if rank is not None else _rank()) != 0:
        yield
        return
    path = Path(path)
    if directory:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise RetroError(f"cannot open output directory {str(path)!r}: {e.strerror or e}") from None
        _flock(fd, path)
        try:
            yield
        finally:
            os.close(fd)
        return
    lock_path = lock_file_for(path)
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise RetroError(f"cannot create the lock file {str(lock_path)!r}: {e.strerror or e}") from None
        _flock(fd, path)
        # The holder before us may have removed the file between our open and our lock: then ours is stale.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(lock_path)
        except OSError:
            pass
        os.close(fd)


@contextmanager
def locked_output_directory(path: str | os.PathLike, flag: str = "--out") -> Iterator[Path]:
    """Create the output directory ``path`` if needed and hold its lock for the block (see :func:`lock_output`);
    a directory this call created and left empty (the block failed before writing) is removed on the way out.

    Raises:
        RetroError: ``path`` cannot be created (named with ``flag``), or another process holds its lock.
    """
    path = Path(path)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RetroError(f"cannot create {flag} {str(path)!r}: {e.strerror or e}") from None
    try:
        with lock_output(path, directory=True):
            yield path
    finally:
        if created:
            try:
                path.rmdir()  # only if still empty
            except OSError:
                pass
