"""Importance sampling estimate of log p(answer | question), per answer, with guide, prior or mixture proposal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from retro.errors import RetroError
from retro.inference.exact import exact
from retro.inference.log_weights import DEFAULT_MAX_ROWS, preferred_proposal, sampled_log_weights
from retro.inference.registry import Registration, estimator, register
from retro.inference.results import Estimate
from retro.inference.sites import latent_sites
from retro.inference.weight_records import estimate_from_log_weights
from retro.program import StringProgram

__all__ = ["importance", "PROPOSALS", "DEFAULT_PARTICLES", "guide_fraction_of"]

Proposal = Literal["guide", "prior", "mixture"]
PROPOSALS = ("guide", "prior", "mixture")
DEFAULT_PARTICLES = 1000


def guide_fraction_of(proposal: str, mixture_weight: float) -> float:
    """Share of the particles drawn from the guide under ``proposal``."""
    if proposal not in PROPOSALS:
        raise RetroError(f"unknown proposal {proposal!r}; expected one of {', '.join(PROPOSALS)}")
    if not 0.0 < mixture_weight < 1.0:
        raise RetroError(f"mixture_weight must be in (0, 1), got {mixture_weight}")
    return {"guide": 1.0, "prior": 0.0, "mixture": mixture_weight}[proposal]


@estimator
def importance(
    program: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    guide=None,
    num_particles: int = DEFAULT_PARTICLES,
    seed: int | None = None,
    answer_ids: Sequence[int] | torch.Tensor | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
    proposal: Proposal | None = None,
    mixture_weight: float = 0.5,
) -> Estimate:
    """log of the mean importance weight, per answer: a consistent estimate of log p (biased low for small K).

    Args:
        num_particles: K particles per answer, vectorized; memory is bounded by ``max_rows`` particle x answer
            rows per pass, not by K.
        proposal: ``"guide"``, ``"prior"``, or ``"mixture"`` (defensive: ``mixture_weight`` guide + rest prior);
            default: :func:`~retro.inference.log_weights.preferred_proposal` (the guide, or the mixture for an
            ensemble's guide; the prior without a guide).
        seed, answer_ids, max_rows, progress: see :func:`retro.inference.registry.estimate`.

    Returns:
        :class:`~retro.inference.results.Estimate` whose ``info.log_weights`` is the ``[K, B]`` matrix (e.g. for
        :func:`retro.inference.psis.to_inference_data`). A program without latents gets its exact value.
    """
    if not latent_sites(program, questions[:1], answers[:1]):
        return exact(program, questions, answers, max_rows=max_rows, seed=seed, answer_ids=answer_ids)
    proposal = proposal or preferred_proposal(guide)
    fraction = guide_fraction_of(proposal, mixture_weight)
    method = f"importance[{proposal}]"
    log_w = sampled_log_weights(
        program,
        questions,
        answers,
        num_particles,
        guide,
        fraction,
        max_rows,
        progress,
        method,
        seed,
        answer_ids,
    )
    return estimate_from_log_weights(log_w, questions, answers, method, "estimate")


register(
    Registration(
        "importance",
        importance,
        kind="estimate",
        budget="particles",
        default_budget=DEFAULT_PARTICLES,
        small_budget=10,
        proposals=PROPOSALS,
        guide_proposals=("guide", "mixture"),
        options=("proposal", "mixture_weight"),
    )
)
