"""Sudoku puzzles with several solutions: validity, exact enumeration, generation, and ApproxMC model counts.

Pure combinatorics (no torch). Grids are ``n x n`` with ``n`` 4 (2x2 boxes) or 9 (3x3 boxes).

String format, relied on by the rest of the library:

- a *puzzle* is the grid row by row, ``'1'..'n'`` for givens and ``'.'`` for blanks, no separators, length ``n*n``;
- a *solution* is the full grid row by row, ``n*n`` digits, no separators.

The constraint imitator (uniform over all valid completions) gives every solution log p = -log(#solutions);
:func:`log_prob_bounds` returns that exactly when enumeration is feasible and otherwise turns ApproxMC's
(epsilon, delta) guarantee into bounds.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass

from retro.errors import RetroError
from retro.sudoku import BOX_SIDE, GEOMETRY, UNITS, grid_size, is_solution, quote_puzzle

__all__ = [
    "ApproxCount",
    "DEFAULT_SOLUTION_RANGE",
    "EXACT_LIMIT",
    "approx_count",
    "count_solutions",
    "grid_size",
    "is_solution",
    "log_prob_bounds",
    "make_puzzles",
    "random_solution",
    "solutions",
    "sudoku_cnf",
]

#: Default ``(min_solutions, max_solutions)`` of :func:`make_puzzles` per grid size. The 9x9 range is the
#: "few givens" variant: hundreds to a few thousand solutions, still cheap to count exactly.
DEFAULT_SOLUTION_RANGE: dict[int, tuple[int, int]] = {4: (2, 12), 9: (200, 5000)}

#: :func:`log_prob_bounds` enumerates exactly below this many solutions and uses ApproxMC above it.
EXACT_LIMIT = 100_000

_POPCOUNT = [bin(m).count("1") for m in range(1 << 9)]


def _search(puzzle: str, limit: int | None, collect: bool, rng: random.Random | None = None):
    """Backtracking over blanks, most-constrained cell first (bitmask candidates).

    Returns ``(count, grids)``: the number of solutions found (stopping once ``limit`` is reached) and, when
    ``collect``, their strings. With ``rng`` the candidate digits are tried in random order.
    """
    n = grid_size(puzzle)
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise RetroError(f"solution limit must be a non-negative integer or None, got {limit!r}")
    g = GEOMETRY[n]
    R, C, B, full, pop = g.row, g.col, g.box, g.full, _POPCOUNT
    rows, cols, boxes = [0] * n, [0] * n, [0] * n
    cells = list(puzzle)
    empties: list[int] = []
    for i, ch in enumerate(puzzle):
        if ch == ".":
            empties.append(i)
            continue
        bit = 1 << (int(ch) - 1)
        if (rows[R[i]] | cols[C[i]] | boxes[B[i]]) & bit:
            return 0, []  # contradictory givens: no solutions
        rows[R[i]] |= bit
        cols[C[i]] |= bit
        boxes[B[i]] |= bit
    if limit == 0:
        return 0, []
    cap = math.inf if limit is None else limit
    found: list[str] = []
    count = 0
    digit_of_bit = g.digit_of_bit

    def unassign(placed: list[int]) -> None:
        for i in placed:
            bit = 1 << (int(cells[i]) - 1)
            rows[R[i]] ^= bit
            cols[C[i]] ^= bit
            boxes[B[i]] ^= bit
            cells[i] = "."

    def dfs(k: int) -> bool:
        """Fill ``empties[:k]`` (permuting only that slice); True when the limit is reached (stop everything).

        Naked singles are placed in bulk, pass after pass; then the blank with fewest candidates is branched on.
        """
        nonlocal count
        placed: list[int] = []
        while True:
            best_j, best_pc, best_m = -1, n + 1, 0
            progress = False
            j = 0
            while j < k:
                i = empties[j]
                r, c, b = R[i], C[i], B[i]
                m = full & ~(rows[r] | cols[c] | boxes[b])
                if m & (m - 1) == 0:  # zero or one candidate
                    if m == 0:
                        unassign(placed)
                        return False
                    rows[r] |= m
                    cols[c] |= m
                    boxes[b] |= m
                    cells[i] = digit_of_bit[m]
                    placed.append(i)
                    k -= 1
                    empties[j], empties[k] = empties[k], empties[j]
                    progress = True
                    continue
                if not progress:
                    pc = pop[m]
                    if pc < best_pc:
                        best_j, best_pc, best_m = j, pc, m
                j += 1
            if not progress:
                break
        if k == 0:
            count += 1
            if collect:
                found.append("".join(cells))
            unassign(placed)
            return count >= cap
        k -= 1
        empties[best_j], empties[k] = empties[k], empties[best_j]
        i = empties[k]
        r, c, b = R[i], C[i], B[i]
        bits = []
        m = best_m
        while m:
            bit = m & -m
            bits.append(bit)
            m ^= bit
        if rng is not None:
            rng.shuffle(bits)
        stop = False
        for bit in bits:
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            cells[i] = digit_of_bit[bit]
            stop = dfs(k)
            rows[r] ^= bit
            cols[c] ^= bit
            boxes[b] ^= bit
            if stop:
                break
        cells[i] = "."
        unassign(placed)
        return stop

    dfs(len(empties))
    return int(count), found


def solutions(puzzle: str, limit: int | None = None) -> list[str]:
    """All solutions of ``puzzle`` (the first ``limit`` if given), in a fixed deterministic order.

    Exact enumeration by backtracking, most-constrained blank first. Contradictory givens give ``[]``.
    """
    return _search(puzzle, limit, collect=True)[1]


def count_solutions(puzzle: str, limit: int | None = None) -> int:
    """The exact number of solutions of ``puzzle``, or ``limit`` if there are at least that many."""
    return _search(puzzle, limit, collect=False)[0]


def random_solution(puzzle: str, rng: random.Random) -> str:
    """A solution of ``puzzle`` drawn uniformly among all its solutions (enumerates them all)."""
    found = solutions(puzzle)
    if not found:
        raise RetroError(f"sudoku puzzle {quote_puzzle(puzzle)} has no solution")
    return found[rng.randrange(len(found))]


def _random_grid(n: int, rng: random.Random) -> str:
    """A random valid full n x n grid (backtracking from the empty grid with shuffled candidates)."""
    return _search("." * (n * n), 1, collect=True, rng=rng)[1][0]


def make_puzzles(
    size: int,
    n: int,
    rng: random.Random,
    min_solutions: int | None = None,
    max_solutions: int | None = None,
) -> list[str]:
    """``n`` random ``size x size`` puzzles whose solution counts lie in ``[min_solutions, max_solutions]``.

    Each starts from a random full grid; givens are removed in random order, a removal being undone when the
    count would exceed ``max_solutions``, until the count reaches a per-puzzle target drawn log-uniformly in the
    range (so counts spread over the range instead of piling up at one end), or, once the count is at least
    ``min_solutions``, until the first undone removal (each costs a full enumeration up to the cap). Attempts
    that cannot reach ``min_solutions`` are discarded. The defaults are :data:`DEFAULT_SOLUTION_RANGE` (4x4: 2..12; 9x9: 200..5000,
    few givens). Deterministic given ``rng``; the same puzzle may occur twice.
    """
    if size not in BOX_SIDE:
        raise RetroError(f"sudoku size must be 4 or 9, got {size!r}")
    if not isinstance(n, int) or n < 0:
        raise RetroError(f"number of sudoku puzzles must be a non-negative integer, got {n!r}")
    lo, hi = DEFAULT_SOLUTION_RANGE[size]
    lo = lo if min_solutions is None else min_solutions
    hi = hi if max_solutions is None else max_solutions
    if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
        raise RetroError(
            f"sudoku solution range must satisfy 1 <= min_solutions <= max_solutions, got {lo}..{hi}"
        )
    puzzles: list[str] = []
    attempts = 0
    while len(puzzles) < n:
        attempts += 1
        if attempts > 100 * n + 100:
            raise RetroError(f"could not make {n} {size}x{size} puzzles with {lo}..{hi} solutions")
        target = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        grid = list(_random_grid(size, rng))
        order = list(range(size * size))
        rng.shuffle(order)
        count = 1
        for i in order:
            if count >= target:
                break
            digit, grid[i] = grid[i], "."
            new = count_solutions("".join(grid), limit=hi + 1)
            if new > hi:
                grid[i] = digit
                if count >= lo:  # over the cap: stop here rather than pay for more full-cap enumerations
                    break
            else:
                count = new
        if lo <= count <= hi:
            puzzles.append("".join(grid))
    return puzzles


# ---------------------------------------------------------------------------------------------------------------
# CNF encoding and ApproxMC


def _var(n: int, r: int, c: int, d: int) -> int:
    return r * n * n + c * n + d + 1


def sudoku_cnf(puzzle: str) -> tuple[list[list[int]], list[int]]:
    """The DIMACS clauses of ``puzzle`` and its sampling set (all ``n**3`` cell-digit variables).

    Variable ``v(r, c, d) = r*n*n + c*n + d + 1`` (0-based row, column, digit) means "cell (r, c) holds d+1".
    Clauses: every cell holds at least one and at most one digit; every row, column and box holds each digit at
    least once and at most once; a unit clause per given. Its models are exactly the puzzle's solutions.
    """
    n = grid_size(puzzle)
    clauses: list[list[int]] = []

    def exactly_one(lits: list[int]) -> None:
        clauses.append(list(lits))
        for a in range(len(lits)):
            for b in range(a + 1, len(lits)):
                clauses.append([-lits[a], -lits[b]])

    for r in range(n):
        for c in range(n):
            exactly_one([_var(n, r, c, d) for d in range(n)])
    for unit in UNITS[n]:
        for d in range(n):
            exactly_one([_var(n, i // n, i % n, d) for i in unit])
    for i, ch in enumerate(puzzle):
        if ch != ".":
            clauses.append([_var(n, i // n, i % n, int(ch) - 1)])
    return clauses, list(range(1, n**3 + 1))


@dataclass(frozen=True)
class ApproxCount:
    """An ApproxMC model count with its PAC guarantee.

    ``count`` is ApproxMC's estimate ``cells * 2**hashes``. With probability at least ``1 - delta``:
    ``count / (1 + epsilon) <= true count <= count * (1 + epsilon)``. Below ApproxMC's threshold (about 100 for
    the default epsilon, after its preprocessing factors out forced and free variables into ``hashes``) the count
    is exact; ``hashes`` alone does not say whether it was.
    """

    count: int
    epsilon: float
    delta: float
    hashes: int = 0

    @property
    def log_count(self) -> float:
        """Natural log of :attr:`count`."""
        return math.log(self.count)

    @property
    def log_count_lower(self) -> float:
        """``log(count) - log(1 + epsilon)``: a lower bound on the log true count w.p. >= 1 - delta."""
        return self.log_count - math.log1p(self.epsilon)

    @property
    def log_count_upper(self) -> float:
        """``log(count) + log(1 + epsilon)``: an upper bound on the log true count w.p. >= 1 - delta."""
        return self.log_count + math.log1p(self.epsilon)


@functools.cache
def _checked_pyapproxmc():
    """The ``pyapproxmc`` module, after checking it counts a formula with two models as 2.

    pyapproxmc 4.3.x and 4.4.0 drop the factor of variables that their preprocessing eliminates (``x1 xor x2``
    over ``{x1, x2}`` counts as 1, and a 4x4 Sudoku with 4 solutions as 1); 4.1.24 counts correctly.
    """
    try:
        import pyapproxmc
    except ImportError:
        raise RetroError("pyapproxmc is not installed: pip install 'retro-imitators[experiments]'") from None
    counter = pyapproxmc.Counter(seed=1)
    counter.add_clauses([[1, 2], [-1, -2]])
    cells, hashes = counter.count([1, 2])
    if cells << hashes != 2:
        version = getattr(pyapproxmc, "__version__", "?")
        raise RetroError(
            f"pyapproxmc {version} miscounts (x1 xor x2 has {cells << hashes} models, not 2; 4.3 and 4.4 do this): "
            "pip install 'pyapproxmc>=4.1.24,<4.3'"
        )
    return pyapproxmc


def approx_count(puzzle: str, epsilon: float = 0.8, delta: float = 0.2, seed: int = 1) -> ApproxCount:
    """ApproxMC's (epsilon, delta) estimate of the number of solutions of ``puzzle`` (via :func:`sudoku_cnf`).

    Needs ``pyapproxmc`` (``pip install 'retro-imitators[experiments]'``). A puzzle without solutions raises.
    """
    grid_size(puzzle)
    if not (isinstance(epsilon, (int, float)) and epsilon > 0):
        raise RetroError(f"ApproxMC epsilon must be > 0, got {epsilon!r}")
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise RetroError(f"ApproxMC delta must be in (0, 1), got {delta!r}")
    pyapproxmc = _checked_pyapproxmc()
    clauses, sampling_set = sudoku_cnf(puzzle)
    counter = pyapproxmc.Counter(seed=int(seed), epsilon=float(epsilon), delta=float(delta))
    counter.add_clauses(clauses)
    cells, hashes = counter.count(sampling_set)
    if cells <= 0:
        raise RetroError(f"sudoku puzzle {quote_puzzle(puzzle)} has no solution (ApproxMC count 0)")
    return ApproxCount(
        count=int(cells) << int(hashes), epsilon=float(epsilon), delta=float(delta), hashes=int(hashes)
    )


def log_prob_bounds(
    puzzle: str,
    exact_limit: int = EXACT_LIMIT,
    epsilon: float = 0.8,
    delta: float = 0.2,
    seed: int = 1,
) -> tuple[float, float]:
    """``(lower, upper)`` on the constraint imitator's log p = -log(#solutions) of any solution of ``puzzle``.

    Exact (``lower == upper``) when enumeration finds fewer than ``exact_limit`` solutions; otherwise ApproxMC's
    bounds ``(-log_count_upper, -log_count_lower)``, which hold with probability at least ``1 - delta``.
    """
    count = count_solutions(puzzle, limit=exact_limit)
    if count == 0:
        raise RetroError(f"sudoku puzzle {quote_puzzle(puzzle)} has no solution; log p is undefined")
    if count < exact_limit:
        value = -math.log(count)
        return value, value
    approx = approx_count(puzzle, epsilon=epsilon, delta=delta, seed=seed)
    return -approx.log_count_upper, -approx.log_count_lower
