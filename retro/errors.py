"""The one exception type users catch: every bad-input error in retro is a ``RetroError`` with a one-line message."""

__all__ = ["RetroError", "DataError"]


class RetroError(ValueError):
    """Bad input or state, explained in one line naming what and where."""


class DataError(RetroError):
    """A dataset cannot be read (defined here, below both ``retro.data`` and ``retro.datasets``, which raise it)."""
