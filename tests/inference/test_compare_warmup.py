"""``compare`` times its rows after a warm-up: a one-time start-up cost is charged to no row.

Tested on the mechanism, not on wall-time ratios (robust on a loaded machine): an estimator whose first call in the
process pays a known start-up cost (a sleep of :data:`STARTUP` seconds) is compared twice; every row must take
less than that cost, which it could not if the start-up were charged to it.
"""

import time

import pytest

from retro.humans import make_human
from retro.inference import compare

STARTUP = 1.0
CALLS: list[tuple[int, int]] = []


def slow_start(num_answers: int, num_particles: int) -> None:
    """A one-time start-up cost on the estimator's first call in the process, then a log of each call."""
    if not CALLS:
        time.sleep(STARTUP)
    CALLS.append((num_answers, num_particles))


@pytest.fixture
def registered(throwaway_estimator):
    CALLS.clear()
    throwaway_estimator("slow_start", default_budget=8, small_budget=2, before=slow_start)


def test_the_first_row_is_not_charged_the_start_up_cost(registered):
    human = make_human("typist")
    questions, answers = human.draw(4, seed=0)
    result = compare(human, questions, answers, ["slow_start", "slow_start"], [2, 8], seed=1)
    assert [(row.method, row.budget) for row in result.rows] == [("slow_start", 2), ("slow_start", 8)] * 2
    # each method's warm-up is one answer at the smallest budget, before its rows
    assert CALLS == [(1, 2), (4, 2), (4, 8)] * 2
    assert all(row.seconds < STARTUP for row in result.rows), [row.seconds for row in result.rows]
    assert all(row.khat_over_threshold >= 0 and row.ess_min <= 8 for row in result.rows)
