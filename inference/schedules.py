"""Learning-rate schedules of :func:`~retro.inference.train.train`: a function of the run's progress in [0, 1].

Progress is counted in steps when the run has a step count (``steps``), and in training seconds when it has only a
time budget (``minutes``): then the schedule follows the clock, so a cosine schedule reaches its floor when the
time is up, however fast the machine is. Training seconds are part of the saved training state, so a resumed run
continues the schedule from the point where it stopped (not from its peak).
"""

from __future__ import annotations

import math

__all__ = ["LR_SCHEDULES", "COSINE_FINAL_FRACTION", "schedule_progress", "scheduled_learning_rate"]

LR_SCHEDULES = ("constant", "cosine")
COSINE_FINAL_FRACTION = 0.02


def schedule_progress(
    step: int, steps: int | None, seconds: float = 0.0, minutes: float | None = None
) -> float:
    """How far a run is, in [0, 1]: by ``step`` of ``steps`` (1-based) when ``steps`` is given, else by ``seconds``
    of training out of the ``minutes`` budget."""
    if steps is not None:
        return 1.0 if steps == 1 else min(1.0, (step - 1) / (steps - 1))
    if minutes is None:
        raise ValueError("a schedule needs steps or a time budget (minutes)")
    return min(1.0, max(0.0, seconds / (60.0 * minutes)))


def scheduled_learning_rate(schedule: str, peak: float, progress: float) -> float:
    """The step size at ``progress``: ``peak`` throughout (``"constant"``), or along a half cosine from ``peak`` to
    :data:`COSINE_FINAL_FRACTION` of it (``"cosine"``)."""
    if schedule == "constant":
        return peak
    if schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; known: {', '.join(LR_SCHEDULES)}")
    return peak * (
        COSINE_FINAL_FRACTION + (1 - COSINE_FINAL_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))
    )
