"""Checks of the imitator contract shared by the built-in programs' tests and the language models' tests."""

from __future__ import annotations

import pyro
import torch
from pyro import poutine

from retro.program import ANSWER_SITE


def _log_prob_sum(trace) -> torch.Tensor:
    trace.compute_log_prob()
    return sum(s["log_prob"] for s in trace.nodes.values() if s["type"] == "sample" and "log_prob" in s)


def assert_particles_match_one_at_a_time(program, questions, answers, particles: int = 5) -> None:
    """The joint log p of ``particles`` x answers, traced in one vectorized call under a ``particles`` plate,
    equals the joint log p of each particle's latents traced alone (float64, 1e-9)."""
    q, a = program.encode_questions(questions), program.encode_answers(answers)
    with pyro.plate("particles", particles, dim=-2):
        trace = poutine.trace(program.model).get_trace(q, a)
    joint = _log_prob_sum(trace).expand(particles, len(questions))
    latents = {
        n: s["value"]
        for n, s in trace.nodes.items()
        if s["type"] == "sample" and not s["is_observed"] and n not in (ANSWER_SITE, "particles")
    }
    for k in range(particles):
        one = {n: v[k] if v.dim() >= 2 and v.shape[0] == particles else v for n, v in latents.items()}
        expected = _log_prob_sum(poutine.trace(poutine.condition(program.model, one)).get_trace(q, a))
        assert torch.allclose(joint[k], expected.expand(len(questions)), atol=1e-9)
