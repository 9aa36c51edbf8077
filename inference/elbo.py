"""The evidence lower bound per answer, E_q[log p(answer, z) - log q(z)], estimated with K guide particles."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from retro.errors import RetroError
from retro.inference.exact import exact
from retro.inference.log_weights import DEFAULT_MAX_ROWS, enumerated_log_weights, sampled_log_weights
from retro.inference.registry import Registration, estimator, register
from retro.inference.results import AnswerEstimate, Estimate, EstimateInfo
from retro.inference.sites import latent_sites
from retro.inference.weight_records import estimate_from_log_weights
from retro.program import StringProgram

__all__ = ["elbo", "DEFAULT_PARTICLES"]

DEFAULT_PARTICLES = 100


@estimator
def elbo(
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
) -> Estimate:
    """ELBO per answer (``kind="lower_bound"``).

    With continuous latents: Monte Carlo over K guide particles, standard error sd(log w)/sqrt(K), plus the ESS and
    k-hat of the guide as an importance proposal. With discrete latents only: the expectation over the guide is
    summed exactly over every latent value (no Monte Carlo error; sampling would miss rarely proposed values and
    understate the error). A program without latents gets its exact value.
    """
    sites = latent_sites(program, questions[:1], answers[:1])
    if not sites:
        return exact(program, questions, answers, max_rows=max_rows, seed=seed, answer_ids=answer_ids)
    if all(site.discrete for site in sites.values()):
        return _enumerated_elbo(program, questions, answers, guide, sites, max_rows)
    log_w = sampled_log_weights(
        program, questions, answers, num_particles, guide, 1.0, max_rows, progress, "elbo", seed, answer_ids
    )
    return estimate_from_log_weights(log_w, questions, answers, "elbo", "lower_bound")


def _enumerated_elbo(program, questions, answers, guide, sites, max_rows) -> Estimate:
    if guide is None:
        raise RetroError("elbo needs a trained guide; this model has none")
    q_batch, a_batch = program.encode_questions(questions), program.encode_answers(answers)
    values = math.prod(site.support_size for site in sites.values())
    chunk = max(1, max_rows // values)
    bounds = []
    for start in range(0, len(answers), chunk):
        index = slice(start, start + chunk)
        log_w, log_q = enumerated_log_weights(program, guide, q_batch[index], a_batch[index], sites)
        # q(z) * log w(z), with 0 * (-inf) = 0 for values the guide never proposes
        bounds.append((log_q.exp() * log_w).where(log_q > -math.inf, torch.zeros_like(log_w)).sum(0))
    nan = float("nan")
    method = "elbo[enumerated]"
    records = [
        AnswerEstimate(q, a, float(v), 0.0, nan, nan, values, method, "lower_bound")
        for q, a, v in zip(questions, answers, torch.cat(bounds).tolist())
    ]
    return Estimate(records, EstimateInfo(method, values))


register(
    Registration(
        "elbo",
        elbo,
        kind="lower_bound",
        budget="particles",
        default_budget=DEFAULT_PARTICLES,
        small_budget=10,
        needs_guide=True,
    )
)
