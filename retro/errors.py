"""The one exception type users catch: every bad-input error in retro is a ``RetroError`` with a one-line message."""

__all__ = ["RetroError"]


class RetroError(ValueError):
    """Bad input or state, explained in one line naming what and where."""
