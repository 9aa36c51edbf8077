"""Log importance weights log p(answer, z | question) - log r(z) for particles x answers, in bounded memory.

The proposal r is the guide, the prior, or their defensive mixture ``f * guide + (1 - f) * prior`` with a
deterministic allocation (the first ``round(f * K)`` particles from the guide) and balance-heuristic weights, which
keep the estimate unbiased (Veach & Guibas 1995; Owen & Zhou 2000). Particles are a vectorized plate at
``dim=-2``; only chunks of particles and of answers are looped over, so memory is bounded by ``max_rows``.
"""

from __future__ import annotations

import contextlib
import math

import pyro
import torch
from pyro import poutine
from tqdm import tqdm

from retro.errors import RetroError
from retro.inference.sites import sample_sites, trace_log_prob
from retro.inference.streams import KeyedSampling
from retro.memory import check_allocation
from retro.program import ANSWER_SITE, PARTICLE_DIM, StringProgram
from retro.text import StringBatch

__all__ = [
    "log_weights",
    "sampled_log_weights",
    "enumerated_log_weights",
    "length_buckets",
    "particle_traces",
    "site_sum",
    "enumerated_values",
    "DEFAULT_MAX_ROWS",
    "preferred_proposal",
]

BYTES_PER_WEIGHT = 8  # float64 at most
DEFAULT_MAX_ROWS = 8192  # particle x answer rows decoded at once


def preferred_proposal(guide, choices: tuple[str, ...] = ("guide", "prior", "mixture")) -> str:
    """The proposal an estimator uses when none is named, among ``choices``: the prior without a guide; else the
    guide's own preference (its ``preferred_proposal`` attribute: ``"mixture"`` for an ensemble's guide) where it
    is among ``choices``, otherwise the guide."""
    if guide is None:
        return "prior"
    wanted = getattr(guide, "preferred_proposal", "guide")
    return wanted if wanted in choices else "guide"


def length_buckets(lengths: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Indices of answers of one length at a time, ``size`` at most per chunk: a batch is decoded to its longest
    answer, so mixing lengths wastes decoder steps on padding (3x on the arithmetic human's answers)."""
    chunks = []
    for length in lengths.unique().tolist():
        bucket = (lengths == length).nonzero().squeeze(-1)
        chunks += [bucket[start : start + size] for start in range(0, len(bucket), size)]
    return chunks


def site_sum(trace, shape: torch.Size, names=None) -> torch.Tensor:
    """Sum of the trace's site log densities (or those in ``names``) broadcast to ``shape`` (zeros when none)."""
    total = trace_log_prob(trace, names)
    return torch.zeros(shape) if total is None else total.expand(shape)


def particle_traces(program, guide, questions, answers, count: int, edit=None):
    """``(guide_trace, model_trace)`` for ``count`` guide particles, a plate at ``dim=-2``: the guide is traced,
    then ``program.model`` is replayed on the guide's latent values. Differentiable unless the caller turns
    gradients off; ``edit(guide_trace)``, when given, may replace the guide's values (and distributions) in place
    before the model sees them (the IWAE objective reroutes gradients this way)."""
    with pyro.plate("particles", count, dim=PARTICLE_DIM):
        guide_trace = poutine.trace(guide).get_trace(questions, answers)
        if edit is not None:
            edit(guide_trace)
        model_trace = poutine.trace(poutine.replay(program.model, trace=guide_trace)).get_trace(
            questions, answers
        )
    return guide_trace, model_trace


def _chunk_log_weights(
    program, guide, questions, answers, from_guide: int, from_prior: int, guide_fraction: float, keys=None
) -> torch.Tensor:
    """Log weights of ``from_guide`` guide particles then ``from_prior`` prior particles for one chunk.

    ``keys``: ``(seed, answer_ids[B], first particle id)`` draws every latent from keyed streams
    (:class:`~retro.inference.streams.KeyedSampling`); ``None`` draws from torch's global generator."""
    parts, first = [], 0
    for count, use_guide in ((from_guide, True), (from_prior, False)):
        if count == 0:
            continue
        keyed = contextlib.nullcontext()
        if keys is not None:
            seed, answer_ids, offset = keys
            keyed = KeyedSampling(seed, answer_ids, torch.arange(offset + first, offset + first + count))
        first += count
        if use_guide:
            with keyed:
                guide_trace, model_trace = particle_traces(program, guide, questions, answers, count)
        else:
            with keyed, pyro.plate("particles", count, dim=PARTICLE_DIM):
                model_trace = poutine.trace(program.model).get_trace(questions, answers)
            with pyro.plate("particles", count, dim=PARTICLE_DIM):
                guide_trace = (
                    poutine.trace(poutine.replay(guide, trace=model_trace)).get_trace(questions, answers)
                    if guide_fraction > 0
                    else None
                )
        shape = torch.Size([count, len(answers)])
        latents = [n for n, s in sample_sites(model_trace) if not s["is_observed"] and n != ANSWER_SITE]
        log_joint = site_sum(model_trace, shape)
        if guide_fraction == 0:
            log_proposal = site_sum(model_trace, shape, latents)
        elif guide_fraction == 1:
            log_proposal = site_sum(guide_trace, shape)
        else:
            log_proposal = torch.logaddexp(
                math.log(guide_fraction) + site_sum(guide_trace, shape),
                math.log1p(-guide_fraction) + site_sum(model_trace, shape, latents),
            )
        parts.append(log_joint - log_proposal)
    return torch.cat(parts, dim=0)


@torch.no_grad()
def log_weights(
    program: StringProgram,
    questions: StringBatch,
    answers: StringBatch,
    num_particles: int,
    guide=None,
    guide_fraction: float = 1.0,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress=None,
    seed: int | None = None,
    answer_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Tensor[K, B]`` of log importance weights.

    Args:
        guide_fraction: share of particles drawn from ``guide`` (1: guide, 0: prior, between: mixture).
        max_rows: at most this many particle x answer rows are evaluated at once.
        progress: optional callable ``progress(rows_done)`` (e.g. a tqdm ``update``).
        seed: when given, particle ``k`` of answer ``b`` draws its latents from the keyed stream
            ``(seed, answer_ids[b], k, site, element)``, so the weights do not depend on ``max_rows``, the batch
            or the length buckets; ``None`` draws from torch's global generator.
        answer_ids: ``Tensor[B]``, each answer's index in the whole input (default ``0..B-1``).
    """
    if not 0.0 <= guide_fraction <= 1.0:
        raise ValueError(f"guide_fraction must be in [0, 1], got {guide_fraction}")
    if guide_fraction > 0 and guide is None:
        raise ValueError("a guide is needed for a guide or mixture proposal")
    num_guide = round(guide_fraction * num_particles)
    if seed is not None and answer_ids is None:
        answer_ids = torch.arange(len(answers))
    out = None
    for index in length_buckets(answers.lengths.cpu(), max_rows):
        particles_per_chunk = max(1, max_rows // len(index))
        index = index.to(answers.tokens.device)
        q_chunk, a_chunk = questions[index], answers[index]
        chunk_ids = None if seed is None else answer_ids.to(index.device)[index]
        rows = []
        for p_start in range(0, num_particles, particles_per_chunk):
            p_end = min(num_particles, p_start + particles_per_chunk)
            from_guide = max(0, min(p_end, num_guide) - p_start)
            rows.append(
                _chunk_log_weights(
                    program,
                    guide,
                    q_chunk,
                    a_chunk,
                    from_guide,
                    p_end - p_start - from_guide,
                    guide_fraction,
                    None if seed is None else (seed, chunk_ids, p_start),
                )
            )
            if progress is not None:
                progress((p_end - p_start) * len(index))
        chunk = torch.cat(rows, dim=0)
        if out is None:
            out = chunk.new_empty((num_particles, len(answers)))
        out[:, index] = chunk
    return out


def enumerated_values(sites, device=None) -> dict[str, torch.Tensor]:
    """Every joint value of the discrete ``sites`` as particles: ``{name: Tensor[K, 1]}``, with the dtype the
    site's distribution takes (long for categorical, the default float dtype for bernoulli)."""
    names = list(sites)
    grids = [torch.arange(sites[n].support_size) for n in names]
    if any(sites[n].event_shape for n in names):
        raise ValueError("enumeration of vector-valued discrete sites is not supported")
    mesh = torch.meshgrid(*grids, indexing="ij") if grids else []
    dtype = torch.get_default_dtype()
    return {
        n: m.reshape(-1, 1).to(device).to(dtype if sites[n].family == "bernoulli" else torch.long)
        for n, m in zip(names, mesh)
    }


@torch.no_grad()
def enumerated_log_weights(
    program: StringProgram, guide, questions: StringBatch, answers: StringBatch, sites
) -> tuple[torch.Tensor, torch.Tensor]:
    """For discrete latents only: every joint latent value as a particle.

    Returns ``(log_w, log_q)``, both ``Tensor[K, B]`` with ``K`` the number of joint values, where
    ``log_w = log p(answer, z) - log q(z)`` and ``log_q = log q(z | question, answer)``.
    """
    values = enumerated_values(sites, questions.tokens.device)
    count = next(iter(values.values())).shape[0]
    with pyro.plate("particles", count, dim=PARTICLE_DIM):
        guide_trace = poutine.trace(poutine.condition(guide, data=values)).get_trace(questions, answers)
        model_trace = poutine.trace(poutine.condition(program.model, data=values)).get_trace(
            questions, answers
        )
    shape = torch.Size([count, len(answers)])
    log_q = site_sum(guide_trace, shape)
    return site_sum(model_trace, shape) - log_q, log_q


def sampled_log_weights(
    program,
    questions,
    answers,
    num_particles,
    guide,
    guide_fraction,
    max_rows,
    progress,
    label: str,
    seed,
    ids,
) -> torch.Tensor:
    """Encode, then draw ``log_weights`` from the keyed streams ``(seed, ids)`` with an optional progress bar
    (shared by the sampling estimators)."""
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
            program, q_batch, a_batch, num_particles, guide, guide_fraction, max_rows, bar.update, seed, ids
        )
