"""Exact log p(answer | question): no latents, discrete latents summed out by enumeration, or one real-valued
latent with a Normal prior integrated by quadrature (with any discrete latents summed out at every node)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import torch
from pyro import poutine
from pyro.distributions import Normal
from pyro.infer import config_enumerate

from retro.errors import RetroError
from retro.inference.log_weights import DEFAULT_MAX_ROWS
from retro.inference.registry import Registration, estimator, register
from retro.inference.results import AnswerEstimate, Estimate, EstimateInfo, Target
from retro.inference.sites import LatentSite, base_distribution, joint_values, latent_sites, trace_log_prob
from retro.program import PARTICLE_DIM, StringProgram
from retro.text import StringBatch

__all__ = [
    "exact",
    "exact_estimate",
    "exact_log_prob",
    "exact_log_prob_in_chunks",
    "QUADRATURE_NODES",
    "QUADRATURE_HALF_WIDTH",
]

QUADRATURE_NODES = 801
QUADRATURE_HALF_WIDTH = 9.0  # prior standard deviations on each side


def _enumerated(program: StringProgram, questions: StringBatch, answers: StringBatch) -> torch.Tensor:
    model = poutine.enum(
        config_enumerate(program.model, default="parallel"), first_available_dim=PARTICLE_DIM
    )
    joint = trace_log_prob(poutine.trace(model).get_trace(questions, answers))  # [S_n, ..., S_1, B]
    return joint.reshape(-1, joint.shape[-1]).logsumexp(0) if joint.dim() > 1 else joint


def _enumerating(model, sites: dict[str, LatentSite]):
    """``model`` with its discrete latents summed out in parallel (in the dims left of the particle plate)."""
    if not any(s.discrete for s in sites.values()):
        return model
    return poutine.enum(config_enumerate(model, default="parallel"), first_available_dim=PARTICLE_DIM - 1)


def _quadrature(program, site: LatentSite, sites, questions, answers, nodes: int) -> torch.Tensor:
    """The scalar Normal latent ``site`` integrated by the trapezoid rule, the discrete latents (if any) summed out
    at every node."""
    prior_trace = poutine.trace(program.model).get_trace(questions, answers)
    prior = base_distribution(prior_trace.nodes[site.name]["fn"])
    if not isinstance(prior, Normal):
        raise RetroError(
            f"exact: latent {site.name!r} has a {type(prior).__name__} prior; quadrature needs Normal"
        )
    shape = prior_trace.nodes[site.name]["value"].shape  # [B] or [B, 1]
    # with the discrete latents enumerated, a prior that depends on one grows their dims
    fn = (
        poutine.trace(_enumerating(program.model, sites)).get_trace(questions, answers).nodes[site.name]["fn"]
    )
    if torch.broadcast_shapes(fn.batch_shape + fn.event_shape, shape) != shape:
        raise RetroError(
            f"exact: the prior of {site.name!r} depends on a discrete latent; quadrature needs one Normal prior "
            "per answer (use --method importance)"
        )
    loc, scale = prior.loc.expand(shape), prior.scale.expand(shape)
    u = torch.linspace(
        -QUADRATURE_HALF_WIDTH, QUADRATURE_HALF_WIDTH, nodes, dtype=loc.dtype, device=loc.device
    )
    grid = loc + scale * u.reshape((nodes,) + (1,) * len(shape))  # [G, B(, 1)]
    model = _enumerating(poutine.condition(program.model, data={site.name: grid}), sites)
    with pyro.plate("particles", nodes, dim=PARTICLE_DIM):
        trace = poutine.trace(model).get_trace(questions, answers)
    joint = trace_log_prob(trace)  # log p(answer, z, discrete latents) on the grid: [S_n, ..., S_1, G, B]
    if joint.dim() > 2:
        joint = joint.reshape((-1,) + joint.shape[-2:]).logsumexp(0)
    joint = joint.expand(nodes, len(answers))
    trapezoid = torch.zeros(nodes, 1, dtype=joint.dtype, device=joint.device)
    trapezoid[[0, -1]] = math.log(0.5)
    step = (scale.reshape(len(answers)) * (u[1] - u[0])).log()
    return (joint + trapezoid).logsumexp(0) + step


def exact_log_prob(
    program: StringProgram,
    questions: StringBatch,
    answers: StringBatch,
    sites: dict[str, LatentSite],
    nodes: int = QUADRATURE_NODES,
) -> torch.Tensor:
    """``Tensor[B]`` of exact log p for encoded batches (raises :class:`RetroError` when not computable)."""
    if all(site.discrete for site in sites.values()):
        return _enumerated(program, questions, answers)
    continuous = [s for s in sites.values() if not s.discrete]
    if len(continuous) == 1 and math.prod(continuous[0].event_shape) == 1:
        return _quadrature(program, continuous[0], sites, questions, answers, nodes)
    raise RetroError(
        f"exact log p is not available for {type(program).__name__}: latent sites "
        f"{', '.join(sorted(sites))} (exact needs no latents, discrete latents, or one scalar Normal latent with "
        "any discrete ones); use --method importance"
    )


def _rows_per_answer(sites: dict[str, LatentSite], nodes: int) -> int:
    values = joint_values(sites.values())
    return nodes * values if any(not s.discrete for s in sites.values()) else values


@torch.no_grad()
def exact_log_prob_in_chunks(
    program: StringProgram,
    questions: StringBatch,
    answers: StringBatch,
    sites: dict[str, LatentSite],
    nodes: int = QUADRATURE_NODES,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> torch.Tensor:
    """:func:`exact_log_prob` over chunks of answers, at most ``max_rows`` evaluated rows at once."""
    chunk = max(1, max_rows // _rows_per_answer(sites, nodes))
    return torch.cat(
        [
            exact_log_prob(program, questions[i : i + chunk], answers[i : i + chunk], sites, nodes)
            for i in range(0, len(answers), chunk)
        ]
    )


def exact_estimate(
    questions: Sequence[str],
    answers: Sequence[str],
    values: Sequence[float],
    terms: int | Sequence[int],
    method: str,
    target: Target = "canonical",
) -> Estimate:
    """An exact estimator's result: one record of kind ``exact`` per answer (no Monte Carlo error, no weights:
    standard error 0, ESS and k-hat ``nan``); ``terms``: how many terms were summed for each answer (one number
    for all, or one per answer), reported as its ``num_particles``."""
    terms = [terms] * len(answers) if isinstance(terms, int) else terms
    nan = float("nan")
    records = [
        AnswerEstimate(q, a, float(v), 0.0, nan, nan, n, method, "exact", target)
        for q, a, v, n in zip(questions, answers, values, terms)
    ]
    return Estimate(records, EstimateInfo(method, 0))


@estimator
@torch.no_grad()
def exact(
    program: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    guide=None,
    num_particles: int = 1,
    seed: int | None = None,
    answer_ids: Sequence[int] | torch.Tensor | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
    nodes: int = QUADRATURE_NODES,
) -> Estimate:
    """Exact log p per answer (enumeration or quadrature), in chunks of answers bounded by ``max_rows``.

    ``guide``, ``num_particles``, ``seed``, ``answer_ids`` and ``progress`` are accepted for the common calling
    convention and not used (nothing is drawn). Raises :class:`RetroError` when log p cannot be computed exactly.
    """
    q_batch, a_batch = program.encode_questions(questions), program.encode_answers(answers)
    sites = latent_sites(program, questions[:1], answers[:1])
    rows = _rows_per_answer(sites, nodes)
    values = exact_log_prob_in_chunks(program, q_batch, a_batch, sites, nodes, max_rows)
    method = "exact[quadrature]" if any(not s.discrete for s in sites.values()) else "exact"
    return exact_estimate(questions, answers, values.tolist(), rows if sites else 1, method)


register(
    Registration(
        "exact",
        exact,
        kind="exact",
        budget="none",
        default_budget=1,
        small_budget=1,
        latents="summable",
        options=("nodes",),
    )
)
