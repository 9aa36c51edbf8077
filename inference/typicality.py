"""Typicality test: is the human's answer as probable, under the imitator, as the imitator's own answers?

For each question, the imitator draws ``S = num_samples`` answers; the human answer's log p is ranked among theirs.
If the human answered like the imitator, its rank among the ``S + 1`` answers is uniform (ties broken at random),
so ``u = (#{samples with lower log p} + U * (#{samples with equal log p} + 1)) / (S + 1)``, ``U ~ Uniform(0, 1)``,
is uniform, and so is the two-sided p-value ``2 * min(u, 1 - u)``. Small p-values flag human answers the imitator
finds atypically improbable *or* atypically probable (an imitator whose own answers are noise gives the human's
answers far more probability than its samples: they are not in its typical set either). Ties are common with
discrete answers, hence the randomization. Fisher's method combines the p-values into one overall p-value.
The same estimator scores the human answer and the samples (exact where
the latents can be summed out, else importance sampling with the guide, or the prior), so estimation noise affects
both alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from scipy import stats

from retro.errors import RetroError
from retro.inference.exact import exact_log_prob_in_chunks
from retro.inference.log_weights import log_weights
from retro.inference.sampling import sample_answers
from retro.inference.sites import LatentSite, latent_sites
from retro.program import StringProgram
from retro.text import StringBatch

__all__ = ["typicality_test", "TypicalityResult", "batch_log_prob"]

TIE_TOLERANCE = 1e-4  # nats


@torch.no_grad()
def batch_log_prob(
    program: StringProgram,
    questions: StringBatch,
    answers: StringBatch,
    sites: dict[str, LatentSite],
    guide=None,
    num_particles: int = 200,
) -> torch.Tensor:
    """``Tensor[B]`` of log p(answer | question) for token batches: exact when the latents can be summed out,
    else the log of the mean importance weight (``num_particles`` from the guide, or from the prior). ``sites``:
    the program's latent sites (:func:`~retro.inference.sites.latent_sites`)."""
    if all(site.discrete for site in sites.values()):
        return exact_log_prob_in_chunks(program, questions, answers, sites)
    weights = log_weights(
        program, questions, answers, num_particles, guide, 1.0 if guide is not None else 0.0
    )
    return weights.logsumexp(0) - math.log(num_particles)


@dataclass(frozen=True)
class TypicalityResult:
    """Per-question p-values, Fisher's combined p-value, and the log p summaries they come from."""

    p_values: list[float]
    overall_p_value: float
    fraction_below_005: float
    human_log_prob_mean: float
    sample_log_prob_mean: float
    human_log_probs: list[float]
    sample_log_probs: list[list[float]]  # [question][sample]
    num_samples: int

    def to_dict(self, details: bool = False) -> dict:
        out = asdict(self)
        if not details:
            for key in ("p_values", "human_log_probs", "sample_log_probs"):
                out.pop(key)
        return out


def typicality_test(
    program: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    guide=None,
    num_samples: int = 50,
    num_particles: int = 100,
) -> TypicalityResult:
    """Rank each human answer's log p among ``num_samples`` of the imitator's answers to the same question."""
    if not answers or len(questions) != len(answers):
        raise RetroError(
            f"typicality test: need as many questions as answers (>0), got {len(questions)}, {len(answers)}"
        )
    if num_samples < 1:
        raise RetroError(f"typicality test: num_samples must be >= 1, got {num_samples}")
    q_batch, a_batch = program.encode_questions(questions), program.encode_answers(answers)
    sites = latent_sites(program, questions[:1], answers[:1])
    human = batch_log_prob(program, q_batch, a_batch, sites, guide, num_particles)
    q_rep, samples = sample_answers(program, q_batch, num_samples)
    sampled = batch_log_prob(program, q_rep, samples, sites, guide, num_particles).reshape(
        num_samples, len(answers)
    )
    # The same answer scored in two batches can differ in the last bits: such values count as ties.
    difference = sampled - human[None, :]
    below, equal = (difference < -TIE_TOLERANCE).sum(0), (difference.abs() <= TIE_TOLERANCE).sum(0)
    u = (below + torch.rand(len(answers), device=below.device, dtype=torch.float64) * (equal + 1)) / (
        num_samples + 1
    )
    p_values = (2 * torch.minimum(u, 1 - u)).double()
    fisher = -2 * p_values.log().sum().item()
    overall = float(stats.chi2.sf(fisher, 2 * len(answers)))
    return TypicalityResult(
        p_values=p_values.tolist(),
        overall_p_value=overall,
        fraction_below_005=float((p_values < 0.05).double().mean()),
        human_log_prob_mean=float(human.mean()),
        sample_log_prob_mean=float(sampled.mean()),
        human_log_probs=human.tolist(),
        sample_log_probs=sampled.T.tolist(),
        num_samples=num_samples,
    )
