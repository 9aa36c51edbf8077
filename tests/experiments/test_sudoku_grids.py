"""Sudoku grids: verifier, exact enumeration against brute force, uniform sampling, generation, CNF, ApproxMC."""

import itertools
import math
import random
import sys

import pytest

from optional import needs_pyapproxmc
from retro.errors import RetroError
from retro.experiments import sudoku_grids as sg
from retro.experiments.sudoku_grids import (
    DEFAULT_SOLUTION_RANGE,
    approx_count,
    count_solutions,
    grid_size,
    is_solution,
    log_prob_bounds,
    make_puzzles,
    random_solution,
    solutions,
    sudoku_cnf,
)

SOLVED_4 = "1234341221434321"
SOLVED_9 = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
# A Latin square whose rows and columns are permutations but whose 2x2 boxes are not.
LATIN_NOT_SUDOKU_4 = "1234234134124123"


def row_permutation_completions(puzzle):
    """Every completion of ``puzzle`` whose rows are permutations of 1..n (as the rows of any solution are)."""
    n = grid_size(puzzle)
    choices = []
    for r in range(n):
        row = puzzle[r * n : (r + 1) * n]
        missing = sorted(set("123456789"[:n]) - set(row))
        fills = []
        for perm in itertools.permutations(missing):
            it = iter(perm)
            fills.append("".join(next(it) if ch == "." else ch for ch in row))
        choices.append(fills if len(missing) == row.count(".") else [])
    return map("".join, itertools.product(*choices))


def brute_force(puzzle):
    """The sorted completions with permutation rows that ``is_solution`` accepts."""
    return sorted(g for g in row_permutation_completions(puzzle) if is_solution(puzzle, g))


def blank_out(grid, cells):
    return "".join("." if i in cells else ch for i, ch in enumerate(grid))


def satisfies(clauses, grid):
    """Whether the assignment "cell (r, c) holds grid[r*n+c]" (all other variables false) satisfies the CNF."""
    n = grid_size(grid)
    true = {r * n * n + c * n + int(grid[r * n + c]) - 1 + 1 for r in range(n) for c in range(n)}
    return all(any((lit > 0) == (abs(lit) in true) for lit in clause) for clause in clauses)


def binomial_upper_quantile(m, p, alpha):
    """Smallest f with P[Binomial(m, p) > f] <= alpha."""
    tail = 1.0
    for f in range(m + 1):
        tail -= math.comb(m, f) * p**f * (1 - p) ** (m - f)
        if tail <= alpha:
            return f
    return m


# --------------------------------------------------------------------------------------------------- format


def test_grid_size_reads_the_length_and_rejects_malformed_puzzles():
    assert grid_size("." * 16) == 4
    assert grid_size("." * 81) == 9
    assert grid_size(SOLVED_9) == 9
    for bad, why in [
        ("." * 15, "length 15"),
        ("", "length 0"),
        ("5" + "." * 15, "'5'"),
        ("0" + "." * 80, "'0'"),
        ("x" + "." * 15, "'x'"),
    ]:
        with pytest.raises(RetroError, match=why) as info:
            grid_size(bad)
        assert "\n" not in str(info.value) and "sudoku puzzle" in str(info.value)
    with pytest.raises(RetroError, match="must be a string"):
        grid_size(None)


def test_is_solution_accepts_valid_grids_and_rejects_everything_else_without_raising():
    assert is_solution("." * 16, SOLVED_4)
    assert is_solution(SOLVED_4, SOLVED_4)
    assert is_solution("1..." + "." * 12, SOLVED_4)
    assert is_solution("." * 81, SOLVED_9)
    assert is_solution(SOLVED_9[:40] + "." * 41, SOLVED_9)
    assert not is_solution("2" + "." * 15, SOLVED_4)  # disagrees with a given
    assert not is_solution("." * 16, "1234" * 4)  # rows fine, columns not
    assert not is_solution("." * 16, LATIN_NOT_SUDOKU_4)  # rows and columns fine, boxes not
    swapped = SOLVED_9[1] + SOLVED_9[0] + SOLVED_9[2:]  # row still a permutation, columns broken
    assert not is_solution("." * 81, swapped)
    garbage = ["", "abc", SOLVED_4[:-1], SOLVED_4 + "1", SOLVED_4[:-1] + ".", SOLVED_4[:-1] + "5",
               "１" + SOLVED_4[1:], SOLVED_9, None, 1234, [SOLVED_4], SOLVED_4.encode()]  # fmt: skip
    for answer in garbage:
        assert is_solution("." * 16, answer) is False
    assert is_solution("." * 81, SOLVED_4) is False


# ------------------------------------------------------------------------------------------ exact enumeration


def test_the_empty_4x4_grid_has_the_known_288_solutions_all_distinct_and_valid():
    grids = solutions("." * 16)
    assert len(grids) == 288 == count_solutions("." * 16)
    assert len(set(grids)) == 288
    assert all(is_solution("." * 16, g) for g in grids)


def test_enumeration_matches_brute_force_on_small_4x4_puzzles():
    rng = random.Random(11)
    puzzles = make_puzzles(4, 6, rng, min_solutions=1, max_solutions=12)
    # The same with one given changed to another digit: mostly unsolvable, some with directly clashing givens.
    for puzzle in puzzles[:4]:
        i = rng.choice([i for i, ch in enumerate(puzzle) if ch != "."])
        digit = rng.choice([d for d in "1234" if d != puzzle[i]])
        puzzles.append(puzzle[:i] + digit + puzzle[i + 1 :])
    puzzles.append("1.1." + "." * 12)  # clashing givens
    puzzles.append(".234" + "3412" + "1.4." + "4.2.")  # no clash, but cell (0, 0) has no digit left
    counts = []
    for puzzle in puzzles:
        expected = brute_force(puzzle)
        assert sorted(solutions(puzzle)) == expected
        assert count_solutions(puzzle) == len(expected)
        counts.append(len(expected))
    assert max(counts) >= 2 and min(counts) == 0  # the check covered several solutions and none


def test_limit_stops_the_search():
    assert len(solutions("." * 16, limit=10)) == 10
    assert count_solutions("." * 16, limit=10) == 10
    assert count_solutions("." * 16, limit=1000) == 288
    assert solutions("." * 16, limit=0) == [] and count_solutions("." * 16, limit=0) == 0
    assert count_solutions(SOLVED_9, limit=5) == 1
    with pytest.raises(RetroError, match="limit"):
        count_solutions("." * 16, limit=-1)


def test_9x9_counts_agree_with_enumeration_and_split_over_the_first_blank():
    rng = random.Random(5)
    for puzzle in make_puzzles(9, 2, rng, 50, 400):
        found = solutions(puzzle)
        assert len(found) == len(set(found)) == count_solutions(puzzle)
        assert all(is_solution(puzzle, s) for s in found)
        first = puzzle.index(".")
        split = [count_solutions(puzzle[:first] + d + puzzle[first + 1 :]) for d in "123456789"]
        assert sum(split) == len(found)
        assert split == [sum(s[first] == d for s in found) for d in "123456789"]
    assert count_solutions(SOLVED_9) == 1 and solutions(SOLVED_9) == [SOLVED_9]


# ------------------------------------------------------------------------------------------ uniform sampling


def test_random_solution_is_uniform_over_the_solutions():
    rng = random.Random(2)
    puzzle = next(p for p in make_puzzles(4, 50, random.Random(3)) if 4 <= count_solutions(p) <= 8)
    found = solutions(puzzle)
    k, draws = len(found), 4000
    tally = dict.fromkeys(found, 0)
    for _ in range(draws):
        tally[random_solution(puzzle, rng)] += 1
    assert sum(tally.values()) == draws  # every draw is one of the solutions
    p = 1 / k
    sigma = math.sqrt(draws * p * (1 - p))
    for count in tally.values():
        assert abs(count - draws * p) <= 4 * sigma


def test_random_solution_of_an_unsolvable_puzzle_is_an_error():
    with pytest.raises(RetroError, match="has no solution"):
        random_solution("11" + "." * 14, random.Random(0))


# ---------------------------------------------------------------------------------------------- generation


def test_make_puzzles_4x4_counts_lie_in_the_range_and_are_deterministic():
    puzzles = make_puzzles(4, 100, random.Random(7))
    lo, hi = DEFAULT_SOLUTION_RANGE[4]
    counts = [count_solutions(p) for p in puzzles]
    assert len(puzzles) == 100 and all(len(p) == 16 for p in puzzles)
    assert all(lo <= c <= hi for c in counts)
    assert len(set(counts)) >= 3  # the log-uniform targets spread counts over the range
    assert make_puzzles(4, 100, random.Random(7)) == puzzles
    assert make_puzzles(4, 100, random.Random(8)) != puzzles
    custom = make_puzzles(4, 20, random.Random(9), min_solutions=20, max_solutions=80)
    assert all(20 <= count_solutions(p) <= 80 for p in custom)


def test_make_puzzles_rejects_bad_arguments():
    rng = random.Random(0)
    with pytest.raises(RetroError, match="size must be 4 or 9"):
        make_puzzles(5, 1, rng)
    with pytest.raises(RetroError, match="min_solutions <= max_solutions"):
        make_puzzles(4, 1, rng, min_solutions=10, max_solutions=3)
    with pytest.raises(RetroError, match="non-negative"):
        make_puzzles(4, -1, rng)
    assert make_puzzles(4, 0, rng) == []


@pytest.fixture(scope="module")
def puzzles_9x9():
    """Default-range 9x9 puzzles (hundreds to thousands of solutions) with their exact counts."""
    puzzles = make_puzzles(9, 8, random.Random(1))
    return [(p, count_solutions(p)) for p in puzzles]


def test_make_puzzles_9x9_default_range(puzzles_9x9):
    lo, hi = DEFAULT_SOLUTION_RANGE[9]
    assert all(len(p) == 81 and lo <= count <= hi for p, count in puzzles_9x9)


# ------------------------------------------------------------------------------------------ CNF and ApproxMC


def test_cnf_variables_sampling_set_and_models_are_the_solutions():
    clauses, sampling = sudoku_cnf("." * 6 + "3" + "." * 9)  # given 3 at row 1, column 2 of a 4x4 grid
    assert sampling == list(range(1, 65))
    assert [1 * 16 + 2 * 4 + 2 + 1] in clauses
    assert all(0 < abs(lit) <= 64 for clause in clauses for lit in clause)
    _, sampling9 = sudoku_cnf("." * 81)
    assert sampling9 == list(range(1, 730))
    # On 4x4 puzzles: the grids satisfying the CNF are exactly the solutions. Every model is such a grid (one digit
    # per cell, each digit in each row), with permutation rows, so checking those completions checks all models.
    for puzzle in make_puzzles(4, 2, random.Random(4)) + [".234" + "3412" + "1.4." + "4.2."]:
        clauses, _ = sudoku_cnf(puzzle)
        models = sorted(g for g in row_permutation_completions(puzzle) if satisfies(clauses, g))
        assert models == sorted(solutions(puzzle))
    assert not satisfies(sudoku_cnf("." * 16)[0], LATIN_NOT_SUDOKU_4)
    assert not satisfies(sudoku_cnf("2" + "." * 15)[0], SOLVED_4)


@needs_pyapproxmc
def test_approxmc_counts_the_cnf_exactly_on_4x4_puzzles():
    # Every 4x4 count in 1..72 is below ApproxMC's exact-counting threshold (about 100 at epsilon 0.8).
    puzzles = make_puzzles(4, 12, random.Random(6), min_solutions=1, max_solutions=72)
    counts = [count_solutions(p) for p in puzzles]
    assert max(counts) > 20
    for puzzle, count in zip(puzzles, counts):
        approx = approx_count(puzzle)
        assert approx.count == count
        assert approx.log_count_lower < math.log(count) < approx.log_count_upper
    with pytest.raises(RetroError, match="has no solution"):
        approx_count("11" + "." * 14)


@needs_pyapproxmc
def test_approxmc_is_exact_on_9x9_puzzles_with_few_solutions():
    for puzzle in make_puzzles(9, 2, random.Random(12), 10, 60):
        assert approx_count(puzzle, seed=3).count == count_solutions(puzzle)


@needs_pyapproxmc
def test_approxmc_bounds_contain_the_exact_9x9_counts_at_the_promised_rate(puzzles_9x9):
    epsilon, delta = 0.8, 0.2
    failures = 0
    for seed, (puzzle, count) in enumerate(puzzles_9x9, start=1):
        approx = approx_count(puzzle, epsilon=epsilon, delta=delta, seed=seed)
        assert (approx.epsilon, approx.delta) == (epsilon, delta)
        assert approx.log_count == pytest.approx(math.log(approx.count))
        assert approx.log_count_upper - approx.log_count_lower == pytest.approx(2 * math.log1p(epsilon))
        failures += not (approx.log_count_lower <= math.log(count) <= approx.log_count_upper)
    # Each bound fails with probability <= delta; allow what Binomial(m, delta) exceeds with probability 1e-3.
    assert failures <= binomial_upper_quantile(len(puzzles_9x9), delta, 1e-3)


@needs_pyapproxmc
def test_log_prob_bounds_exact_below_the_limit_and_from_approxmc_above(puzzles_9x9):
    puzzle4 = make_puzzles(4, 1, random.Random(0))[0]
    lower, upper = log_prob_bounds(puzzle4)
    assert lower == upper == -math.log(count_solutions(puzzle4))
    puzzle9, count = puzzles_9x9[0]
    assert log_prob_bounds(puzzle9) == (-math.log(count), -math.log(count))
    approx = approx_count(puzzle9, seed=7)
    assert log_prob_bounds(puzzle9, exact_limit=100, seed=7) == (
        -approx.log_count_upper,
        -approx.log_count_lower,
    )
    with pytest.raises(RetroError, match="has no solution"):
        log_prob_bounds("11" + "." * 14)


def test_approx_count_checks_its_arguments_and_explains_a_missing_pyapproxmc(monkeypatch):
    with pytest.raises(RetroError, match="epsilon"):
        approx_count("." * 16, epsilon=0)
    with pytest.raises(RetroError, match="delta"):
        approx_count("." * 16, delta=1.0)
    sg._checked_pyapproxmc.cache_clear()
    monkeypatch.setitem(sys.modules, "pyapproxmc", None)  # makes ``import pyapproxmc`` fail
    try:
        with pytest.raises(
            RetroError, match=r"pyapproxmc is not installed: pip install 'retro-imitators\[experiments\]'"
        ):
            approx_count("." * 16)
    finally:
        sg._checked_pyapproxmc.cache_clear()
