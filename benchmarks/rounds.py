"""Interleaved best-of-rounds timing shared by the training benchmarks (``adversarial_speed``, ``training_speed``)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable


def best_of_rounds(methods: dict[str, Callable[[int], float]], steps: int, repeats: int) -> dict[str, float]:
    """Best wall time of each ``method(steps) -> seconds`` over ``repeats`` rounds that run every method in turn
    (so machine noise hits all alike), after one warm-up step each. Progress goes to stderr."""
    for method in methods.values():
        method(1)
    best = dict.fromkeys(methods, math.inf)
    for round_ in range(repeats):
        for name, method in methods.items():
            best[name] = min(best[name], method(steps))
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in best.items()), file=sys.stderr)
    return best
