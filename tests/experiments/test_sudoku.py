"""Experiment 2: the verifier catches imitators that do not solve; model counting scores the one that matches."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from retro.experiments.sudoku import ConstraintImitator, UniformFillImitator, run_sudoku
from retro.experiments.sudoku_grids import count_solutions, is_solution
from retro.inference import exact

PUZZLE = "1.3..4....2....."  # a 4x4 puzzle with several solutions


def test_uniform_fill_is_a_normalized_law_that_ignores_the_rules(float64):
    imitator = UniformFillImitator(4).double()
    puzzle = PUZZLE
    filled = [i for i, ch in enumerate(puzzle) if ch == "."]
    # Every fill of the blanks (50 of them here) has log p = -blanks * log 4, valid or not; a string that changes
    # a given has probability 0.
    fills = []
    for digits in itertools.islice(itertools.product("1234", repeat=len(filled)), 50):
        grid = list(puzzle)
        for i, d in zip(filled, digits):
            grid[i] = d
        fills.append("".join(grid))
    values = [r.log_prob for r in exact(imitator, [puzzle] * len(fills), fills).records]
    assert values == pytest.approx([-len(filled) * math.log(4)] * len(fills))
    wrong_given = "4" + fills[0][1:]
    assert exact(imitator, [puzzle], [wrong_given]).records[0].log_prob == -math.inf
    samples = imitator.sample([puzzle], num_samples=200)[0]
    assert all(len(s) == 16 and all(s[i] == c for i, c in enumerate(puzzle) if c != ".") for s in samples)


def test_constraint_imitator_is_uniform_over_solutions(float64):
    imitator = ConstraintImitator(4).double()
    count = count_solutions(PUZZLE)
    draws = imitator.sample([PUZZLE], num_samples=100)[0]
    assert all(is_solution(PUZZLE, d) for d in draws)
    values = [r.log_prob for r in exact(imitator, [PUZZLE] * 3, draws[:3]).records]
    assert values == pytest.approx([-math.log(count)] * 3)


@pytest.fixture(scope="module")
def result():
    torch.manual_seed(0)
    return run_sudoku(
        num_puzzles=40, num_puzzles_9x9=3, train_steps=60, disc_steps=40, report_samples=10, seed=2
    )


def test_verifier_discriminator_and_retrodiction_scores(result):
    rows = {(r["size"], r["imitator"]): r for r in result["rows"]}
    assert set(rows) == {
        (4, "constraint"),
        (4, "uniform_fill"),
        (4, "neural"),
        (9, "constraint"),
        (9, "uniform_fill"),
    }
    for size in (4, 9):
        constraint, uniform = rows[(size, "constraint")], rows[(size, "uniform_fill")]
        # The human always passes; so does the constraint imitator (the verifier can only guess: exactly 0.5).
        assert constraint["verifier_pass_rate"] == 1.0 and constraint["verifier_disc_accuracy"] == 0.5
        # Filling blanks at random almost never solves a puzzle: the verifier tells it apart.
        assert uniform["verifier_pass_rate"] <= 0.1 and uniform["verifier_disc_accuracy"] >= 0.95
        # Retrodiction: the constraint imitator's log p is -log(#solutions), far above the random fill's.
        assert constraint["log_prob_mean"] > uniform["log_prob_mean"] + 5
    assert rows[(4, "neural")]["c2st_accuracy"] is not None


def test_model_counting_rows(result):
    for row in result["counting_rows"]:
        assert row["log_prob_exact"] == pytest.approx(-math.log(row["exact_count"]))
        assert row["log_prob_lower"] <= row["log_prob_upper"]
    # Each bound pair holds with probability >= 0.8 (delta = 0.2): at least one of three must hold.
    assert sum(r["within_bounds"] for r in result["counting_rows"]) >= 1
