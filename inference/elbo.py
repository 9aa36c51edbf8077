"""The evidence lower bound per answer, E_q[log p(answer, z) - log q(z)], estimated with K guide particles."""

from __future__ import annotations

from typing import Sequence

from retro.program import StringProgram

from retro.inference.exact import exact
from retro.inference.importance import sampled_log_weights
from retro.inference.results import AnswerEstimate
from retro.inference.sites import latent_sites
from retro.inference.weighted import records_from_log_weights
from retro.inference.weights import DEFAULT_MAX_ROWS

__all__ = ["elbo"]


def elbo(
    program: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    guide=None,
    num_particles: int = 100,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
) -> list[AnswerEstimate]:
    """Monte Carlo ELBO per answer (``kind="lower_bound"``), standard error sd(log w)/sqrt(K), plus the ESS and
    k-hat of the guide as an importance proposal. A program without latents gets its exact value."""
    if not latent_sites(program, questions[:1], answers[:1]):
        return exact(program, questions, answers, max_rows=max_rows)
    log_w = sampled_log_weights(program, questions, answers, num_particles, guide, 1.0, max_rows, progress, "elbo")
    return records_from_log_weights(log_w, questions, answers, "elbo", "lower_bound")
