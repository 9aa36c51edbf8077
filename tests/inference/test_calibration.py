"""The calibration contract: every registered estimator's error bars, at its small and default budget, measured
against exact log p on every built-in human and on imitators with exact log p (at least 400 answers each time).

The limits come from binomial and Monte Carlo standard errors (``retro.inference.calibration.check``): coverage of
the 95% intervals within 4 binomial standard errors of 95%, mean z^2 within 4 of its standard errors of 1, and at
the default budget |mean z| <= 4 / sqrt(n). Lower bounds sit above the exact value at most 2.5% of the time, and
certified bounds at most delta of the time, with the same binomial limits. An estimator added to the registry is
covered with no edit here.
"""

import math

import numpy as np
import pytest
import torch

from retro.humans import make_human
from retro.inference.calibration import calibration, check, reference_cases, run_on_cases, wide_guide
from retro.inference.registry import estimate, registrations, resolve_method

MIN_ANSWERS = 400
DELTA = 0.05
METHODS = [variant for registration in registrations() for variant in registration.variants()]


@pytest.fixture(scope="module")
def cases():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield reference_cases(MIN_ANSWERS // 2, seed=0)  # AIS samples on two of the five programs
    torch.set_default_dtype(previous)


# The default budgets (1000 particles, 64 AIS chains) are the long rows: `-m "not slow"` keeps the small ones.
SIZES = ["small", pytest.param("default", marks=pytest.mark.slow)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("method", METHODS)
def test_error_bars_are_calibrated_and_certified_bounds_hold(cases, method, size):
    registration, _ = resolve_method(method, has_guide=True)
    budget = registration.small_budget if size == "small" else registration.default_budget
    certify = DELTA if registration.kind != "exact" else None
    records, exact, certified = run_on_cases(method, cases, budget, MIN_ANSWERS, seed=1, certify=certify)
    if not records:  # exact on every program: nothing random to calibrate
        assert registration.latents == "summable" or registration.kind == "exact"
        return
    result = calibration(records, exact, budget)
    print(result)  # the README's table: `pytest -s tests/inference/test_calibration.py`
    assert result.num_answers >= MIN_ANSWERS
    assert check(result, default_budget=size == "default") == []
    if certified is not None:
        bounds = calibration(certified, exact, budget)
        estimates = np.array([r.log_prob for r in records])
        below = np.mean(estimates - np.array([r.log_prob for r in certified]))
        print(f"certified: {bounds.above:.4f} above exact, {below:.3f} nats below the estimate")
        assert check(bounds, default_budget=False, delta=DELTA) == []
        assert below <= math.log(1 / DELTA) + 1e-9, below  # on average within log(1/delta) of the estimate


@pytest.mark.slow  # up to 1000 particles per answer
def test_adaptive_budgets_keep_calibration_and_reach_the_target(cases):
    # Budgets picked by pilot draws, estimates from fresh draws: the error bars stay calibrated, and most answers
    # reach the target (the others hit the maximum).
    target, largest = 0.05, 1000
    records, exact, _ = run_on_cases(
        "importance[prior]", cases, largest, MIN_ANSWERS, seed=2, target_stderr=target
    )
    result = calibration(records, exact, largest)
    used = np.array([r.num_particles for r in records])
    reached = np.array([r.stderr <= target for r in records]) | (used == largest)
    print(result, f"{used.mean():.0f} particles on average; {reached.mean():.3f} reach the target")
    assert check(result, default_budget=True) == []
    assert reached.mean() >= 0.8 and used.mean() < largest / 2, (reached.mean(), used.mean())


@pytest.mark.parametrize("method", ["importance[guide]", "ais[guide]"])
def test_the_wide_guides_width_changes_no_number(method):
    # The cases' guides are the narrowest (cheapest) ones; their heads ignore the encoders, so every draw and
    # density, hence every record, is that of a wide guide of any width.
    human = make_human("typist")
    questions, answers = human.draw(5, seed=0)
    options = {"num_steps": 3} if method.startswith("ais") else {}

    def records(width: int) -> str:  # as text: k-hat is nan at 8 draws, and nan != nan
        guide = wide_guide(human, (questions[:1], answers[:1]), hidden_dim=width)
        result = estimate(method, human, questions, answers, guide=guide, num_particles=8, seed=1, **options)
        return repr(result.records)

    assert records(2) == records(16)
