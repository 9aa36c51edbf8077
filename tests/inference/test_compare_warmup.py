"""``compare`` times its rows after a warm-up: a one-time start-up cost is charged to no row.

Tested on the mechanism, not on wall-time ratios (robust on a loaded machine): an estimator whose first call in the
process pays a known start-up cost (a sleep of :data:`STARTUP` seconds) is compared twice; every row must take
less than that cost, which it could not if the start-up were charged to it.
"""

import time

import pytest

from retro.humans import make_human
from retro.inference import Estimate, EstimateInfo, Registration, compare, estimator, register, unregister
from retro.inference.log_weights import DEFAULT_MAX_ROWS, sampled_log_weights
from retro.inference.weight_records import records_from_log_weights

STARTUP = 1.0
CALLS: list[tuple[int, int]] = []


@estimator
def slow_start(
    program,
    questions,
    answers,
    *,
    guide=None,
    num_particles: int = 8,
    seed=None,
    answer_ids=None,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
) -> Estimate:
    """Importance sampling from the prior that pays a one-time start-up cost on its first call."""
    if not CALLS:
        time.sleep(STARTUP)
    CALLS.append((len(answers), num_particles))
    log_w = sampled_log_weights(
        program,
        questions,
        answers,
        num_particles,
        None,
        0.0,
        max_rows,
        progress,
        "slow_start",
        seed,
        answer_ids,
    ).double()
    records = records_from_log_weights(log_w, questions, answers, "slow_start", "estimate")
    return Estimate(records, EstimateInfo("slow_start", num_particles, log_weights=log_w))


@pytest.fixture
def registered():
    CALLS.clear()
    register(
        Registration("slow_start", slow_start, "estimate", "particles", default_budget=8, small_budget=2)
    )
    yield
    unregister("slow_start")


def test_the_first_row_is_not_charged_the_start_up_cost(registered):
    human = make_human("typist")
    questions, answers = human.draw(4, seed=0)
    result = compare(human, questions, answers, ["slow_start", "slow_start"], [2, 8], seed=1)
    assert [(row.method, row.budget) for row in result.rows] == [("slow_start", 2), ("slow_start", 8)] * 2
    # each method's warm-up is one answer at the smallest budget, before its rows
    assert CALLS == [(1, 2), (4, 2), (4, 8)] * 2
    assert all(row.seconds < STARTUP for row in result.rows), [row.seconds for row in result.rows]
    assert all(row.khat_over_threshold >= 0 and row.ess_min <= 8 for row in result.rows)
