"""A run with a time budget and no step count: it trains until the time is up, its schedule follows the clock,
and a resumed run continues the schedule where it stopped."""

from __future__ import annotations

import pytest

from retro.errors import RetroError
from retro.humans import make_human
from retro.inference.schedules import COSINE_FINAL_FRACTION, schedule_progress
from retro.inference.train import TrainConfig, learning_rate_at, train
from retro.models import make_imitator

BUDGET_MINUTES = 0.05  # 3 s
PEAK = 1e-2


def _run(resume=None, minutes=BUDGET_MINUTES):
    questions, answers = make_human("arithmetic", max_length=12).draw(200, seed=0)
    imitator = make_imitator("seq2seq", max_length=12, hidden_dim=8)
    config = TrainConfig(
        steps=None,
        minutes=minutes,
        learning_rate=PEAK,
        lr_schedule="cosine",
        batch_size=8,
        eval_every=10**6,
        checkpoint_every=1,
        progress=False,
    )
    states = []
    report = train(imitator, questions, answers, config=config, on_checkpoint=states.append, resume=resume)
    return config, report, states


def _rate(state) -> float:
    return state.optimizer["param_groups"][0]["lr"]


def test_time_budget_schedule_follows_the_clock_and_resumes_where_it_stopped():
    _run(minutes=1e-4)  # the first steps of a process pay one-time costs: not inside the budget measured
    config, report, states = _run()
    budget = 60 * BUDGET_MINUTES
    assert (
        report.seconds >= budget and report.steps == states[-1].step >= 6
    )  # the time, not a step count, ended it
    # Each step's rate was set between the previous checkpoint's clock and its own: the cosine of elapsed time.
    for before, after in zip(states, states[1:-1]):
        assert learning_rate_at(config, after.step, after.seconds) <= _rate(after)
        assert _rate(after) <= learning_rate_at(config, after.step, before.seconds)
    assert _rate(states[-2]) < 0.2 * PEAK  # near its floor when the time is up
    middle = next(s for s in states if s.seconds > budget / 2)
    _, resumed, after = _run(resume=middle)
    first = next(s for s in after if s.step == middle.step + 1)
    assert (
        _rate(first) <= learning_rate_at(config, first.step, middle.seconds) < 0.6 * PEAK
    )  # not back to the peak
    assert budget <= after[-1].seconds < budget + 5  # the budget counts the seconds before the resumption too


def test_schedule_progress_and_config_checks():
    assert schedule_progress(51, 101) == 0.5 and schedule_progress(7, None, 30.0, 1.0) == 0.5
    assert schedule_progress(7, None, 90.0, 1.0) == 1.0
    rate = learning_rate_at(
        TrainConfig(steps=None, minutes=1.0, lr_schedule="cosine", learning_rate=1.0), 1, 60.0
    )
    assert rate == pytest.approx(COSINE_FINAL_FRACTION)
    with pytest.raises(RetroError, match="give steps, minutes, or both"):
        TrainConfig(steps=None)
