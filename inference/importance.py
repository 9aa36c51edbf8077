"""Importance sampling estimate of log p(answer | question), per answer, with guide, prior or mixture proposal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from tqdm import tqdm

from retro.errors import RetroError
from retro.inference.exact import exact
from retro.inference.results import AnswerEstimate
from retro.inference.sites import latent_sites
from retro.inference.weighted import records_from_log_weights
from retro.inference.weights import DEFAULT_MAX_ROWS, log_weights
from retro.memory import check_allocation
from retro.program import StringProgram

__all__ = ["importance", "importance_with_weights", "WeightedEstimates", "PROPOSALS", "guide_fraction_of"]

Proposal = Literal["guide", "prior", "mixture"]
PROPOSALS = ("guide", "prior", "mixture")


BYTES_PER_WEIGHT = 8  # float64 at most


def guide_fraction_of(proposal: str, mixture_weight: float) -> float:
    if proposal not in PROPOSALS:
        raise RetroError(f"unknown proposal {proposal!r}; expected one of {', '.join(PROPOSALS)}")
    return {"guide": 1.0, "prior": 0.0, "mixture": mixture_weight}[proposal]


def sampled_log_weights(
    program, questions, answers, num_particles, guide, guide_fraction, max_rows, progress, label: str
) -> torch.Tensor:
    """Encode, then draw ``log_weights`` with an optional progress bar (shared by the sampling estimators)."""
    if guide_fraction > 0 and guide is None:
        raise RetroError(f"{label} needs a trained guide; this model has none (use the prior proposal)")
    # Every particle's weight is kept (for k-hat and the ESS): [K, B] and one chunk's copy, checked up front.
    check_allocation(
        2 * BYTES_PER_WEIGHT * num_particles * len(answers),
        f"{label} with {num_particles} particles for {len(answers)} answers (every log weight is kept)",
    )
    q_batch, a_batch = program.encode_questions(questions), program.encode_answers(answers)
    with tqdm(
        total=num_particles * len(answers), desc=label, unit="row", disable=not progress, leave=False
    ) as bar:
        return log_weights(
            program, q_batch, a_batch, num_particles, guide, guide_fraction, max_rows, bar.update
        )


class WeightedEstimates(NamedTuple):
    """Per-answer records and the log weights ``[K, B]`` they came from (``None`` when no weights were drawn)."""

    records: list[AnswerEstimate]
    log_weights: torch.Tensor | None


def importance(
    program: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    guide=None,
    proposal: Proposal = "guide",
    num_particles: int = 1000,
    mixture_weight: float = 0.5,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
) -> list[AnswerEstimate]:
    """log of the mean importance weight, per answer: a consistent estimate of log p (biased low for small K).

    Args:
        proposal: ``"guide"``, ``"prior"``, or ``"mixture"`` (defensive: ``mixture_weight`` guide + rest prior).
        num_particles: K particles per answer, vectorized; memory is bounded by ``max_rows`` particle x answer
            rows per pass, not by K.

    A program without latents gets its exact value (one particle suffices).
    """
    return importance_with_weights(
        program, questions, answers, guide, proposal, num_particles, mixture_weight, max_rows, progress
    ).records


def importance_with_weights(
    program: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    guide=None,
    proposal: Proposal = "guide",
    num_particles: int = 1000,
    mixture_weight: float = 0.5,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
) -> WeightedEstimates:
    """:func:`importance`, also returning the log weights (e.g. for :func:`retro.inference.psis.to_inference_data`)."""
    if not latent_sites(program, questions[:1], answers[:1]):
        return WeightedEstimates(exact(program, questions, answers, max_rows=max_rows), None)
    fraction = guide_fraction_of(proposal, mixture_weight)
    method = f"importance[{proposal}]"
    log_w = sampled_log_weights(
        program, questions, answers, num_particles, guide, fraction, max_rows, progress, method
    )
    return WeightedEstimates(records_from_log_weights(log_w, questions, answers, method, "estimate"), log_w)
