"""Progress bars of the long commands (``score``, ``evaluate``, ``compare``, ``bdmc``, ``report``): on a terminal
only, and never with ``--quiet``. The bars are tqdm's, on stderr, with the estimated time left."""

from __future__ import annotations

import sys

__all__ = ["add_quiet", "show_progress"]


def add_quiet(parser) -> None:
    """The ``--quiet`` flag: no progress bar even on a terminal."""
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (one shows, with the time left, on a terminal)"
    )


def show_progress(args) -> bool:
    """Whether to draw progress bars: stderr is a terminal (not a pipe or a file) and ``--quiet`` was not given."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()
