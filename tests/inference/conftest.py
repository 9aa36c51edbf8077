"""Fixtures shared by the inference tests: a throw-away estimator registered for one test."""

from collections.abc import Callable

import pytest

from retro.inference import Estimate, Registration, estimator, register, unregister
from retro.inference.log_weights import DEFAULT_MAX_ROWS, sampled_log_weights
from retro.inference.weight_records import estimate_from_log_weights


def prior_importance(name: str, default_budget: int, before: Callable[[int, int], None] | None = None):
    """A new estimator, as one module would hold it: importance sampling from the prior, its records labelled
    ``name``; ``before(num_answers, num_particles)``, when given, is called first on every call."""

    def run(
        program,
        questions,
        answers,
        *,
        guide=None,
        num_particles: int = default_budget,
        seed=None,
        answer_ids=None,
        max_rows: int = DEFAULT_MAX_ROWS,
        progress: bool = False,
    ) -> Estimate:
        if before is not None:
            before(len(answers), num_particles)
        log_w = sampled_log_weights(
            program, questions, answers, num_particles, None, 0.0, max_rows, progress, name, seed, answer_ids
        )
        return estimate_from_log_weights(log_w, questions, answers, name, "estimate")

    run.__name__ = run.__qualname__ = name  # what the registry's one-line errors call it
    return estimator(run)


@pytest.fixture
def throwaway_estimator():
    """``add(name, default_budget, small_budget, before=None)`` registers :func:`prior_importance` under ``name``
    (budgets in particles) and returns it; whatever the test does, each estimator it added is unregistered after
    it (a test may unregister one itself)."""
    added: list[str] = []

    def add(name: str, default_budget: int, small_budget: int, before=None):
        function = prior_importance(name, default_budget, before)
        register(
            Registration(
                name,
                function,
                "estimate",
                "particles",
                default_budget=default_budget,
                small_budget=small_budget,
            )
        )
        added.append(name)
        return function

    yield add
    for name in added:
        unregister(name)
