"""Sudoku grids as strings: the shape of a puzzle, its units, and whether an answer solves it.

The core piece shared by the ``sudoku`` verifier (:mod:`retro.verifiers`) and the Sudoku experiment
(:mod:`retro.experiments.sudoku_grids`, which adds enumeration, generation and model counting). Pure Python.

- a *puzzle* is the grid row by row, ``'1'..'n'`` for givens and ``'.'`` for blanks, no separators, length ``n*n``
  with ``n`` 4 (2x2 boxes) or 9 (3x3 boxes);
- a *solution* is the full grid row by row, ``n*n`` digits, no separators.
"""

from __future__ import annotations

from retro.errors import RetroError

__all__ = ["BOX_SIDE", "GEOMETRY", "UNITS", "Geometry", "grid_size", "is_solution", "quote_puzzle"]

#: Grid side ``n`` -> box side.
BOX_SIDE = {4: 2, 9: 3}
_SIZE_OF_LENGTH = {16: 4, 81: 9}


def quote_puzzle(text: str) -> str:
    """``repr(text)``, shortened to about 90 characters for error messages."""
    return repr(text) if len(text) <= 90 else repr(text[:87] + "...")


def grid_size(puzzle: str) -> int:
    """The side ``n`` (4 or 9) of ``puzzle``, checked: length ``n*n``, only ``'1'..'n'`` and ``'.'``."""
    if not isinstance(puzzle, str):
        raise RetroError(f"sudoku puzzle must be a string, got {type(puzzle).__name__}")
    n = _SIZE_OF_LENGTH.get(len(puzzle))
    if n is None:
        raise RetroError(
            f"sudoku puzzle {quote_puzzle(puzzle)} has length {len(puzzle)}; expected 16 (4x4) or 81 (9x9)"
        )
    allowed = set("." + "".join(str(d) for d in range(1, n + 1)))
    bad = sorted(set(puzzle) - allowed)
    if bad:
        raise RetroError(
            f"sudoku puzzle {quote_puzzle(puzzle)} contains {''.join(bad)!r}; a {n}x{n} puzzle uses '1'..'{n}' and '.'"
        )
    return n


class Geometry:
    """Per-size lookup tables: the row, column and box of each cell."""

    def __init__(self, n: int):
        b = BOX_SIDE[n]
        self.n = n
        self.full = (1 << n) - 1
        self.row = [i // n for i in range(n * n)]
        self.col = [i % n for i in range(n * n)]
        self.box = [(i // n) // b * b + (i % n) // b for i in range(n * n)]
        self.digit_of_bit = {1 << d: str(d + 1) for d in range(n)}


GEOMETRY = {n: Geometry(n) for n in BOX_SIDE}


def _make_units(n: int) -> list[list[int]]:
    """The 3n units (rows, columns, boxes) as lists of cell indices."""
    g = GEOMETRY[n]
    units: list[list[int]] = [[] for _ in range(3 * n)]
    for i in range(n * n):
        units[g.row[i]].append(i)
        units[n + g.col[i]].append(i)
        units[2 * n + g.box[i]].append(i)
    return units


UNITS = {n: _make_units(n) for n in BOX_SIDE}


def is_solution(puzzle: str, answer: object) -> bool:
    """Whether ``answer`` is a valid complete grid that agrees with every given of ``puzzle``.

    A verifier for model samples: any ``answer`` (wrong length, letters, empty, not a string) gives ``False``;
    only a malformed ``puzzle`` raises :class:`RetroError`.
    """
    n = grid_size(puzzle)
    if not isinstance(answer, str) or len(answer) != n * n:
        return False
    digits = "".join(str(d) for d in range(1, n + 1))
    if any(ch not in digits for ch in answer):
        return False
    if any(p != "." and p != a for p, a in zip(puzzle, answer)):
        return False
    want = set(digits)
    return all({answer[i] for i in unit} == want for unit in UNITS[n])
