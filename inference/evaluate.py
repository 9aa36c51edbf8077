"""Held-out evaluation of an imitator: log p, perplexity, and the 1-best answers' error rates (WER, PER).

* ``log_prob_mean`` / ``log_prob_stderr``: mean log p per human answer and the standard error of that dataset mean
  (exact when the latents can be summed out: none, or discrete ones with few values; else importance sampling from
  the guide's preferred proposal, :func:`~retro.inference.log_weights.preferred_proposal`: the guide, for an
  ensemble half guide and half prior, and the prior without a guide). ``unreliable_answers`` counts the estimates
  whose Pareto k-hat is over the threshold for their particles (:func:`~retro.inference.results.unreliable`).
* ``perplexity_per_token``: ``exp(-sum log p / sum tokens)``, where an answer's tokens are its codec tokens
  *including* the EOS that ends it (so the empty answer counts one token and the rate is finite for any data);
  ``perplexity_per_word``: the same per whitespace-separated word plus one for the end (per phoneme, for G2P).
* ``wer`` / ``per``: the 1-best answer per distinct question (beam search, latents at the prior mode, see
  :mod:`retro.inference.decoding`) against that question's human answers: WER counts questions whose 1-best equals
  none of them; PER is the corpus error rate against the closest one in the answer codec's units, named in
  ``per_name``: the symbol error rate for a symbol codec (phonemes, for G2P), the character error rate for byte and
  alphabet codecs (see :mod:`retro.inference.metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from retro.distributed import SINGLE, World
from retro.errors import RetroError
from retro.inference.decoding import MAX_ENUMERATED, beam_search
from retro.inference.metrics import error_units, group_answers, token_error_rate, word_error_rate
from retro.inference.registry import estimate
from retro.inference.results import summarize
from retro.inference.scoring import DEFAULT_CHUNK_SIZE, map_chunks, record_from_dict
from retro.inference.sites import joint_values, latent_sites
from retro.program import StringProgram

__all__ = ["evaluate", "evaluation_method"]


def evaluation_method(program: StringProgram, questions: Sequence[str], answers: Sequence[str]) -> str:
    """``"exact"`` when the latents can be summed out (none, or few discrete values), else ``"importance"``."""
    sites = latent_sites(program, questions[:1], answers[:1]).values()
    summable = all(s.discrete for s in sites) and joint_values(sites) <= MAX_ENUMERATED
    return "exact" if summable else "importance"


def evaluate(
    program: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    guide=None,
    num_particles: int = 500,
    beam: int = 8,
    seed: int | None = None,
    progress: bool = False,
    target_stderr: float | None = None,
    world: World = SINGLE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, Any] | None:
    """The metrics of ``program`` (with its ``guide``, if any) on held-out pairs (see the module docstring).

    With ``target_stderr`` each answer gets as many particles, up to ``num_particles``, as a standard error of
    ``target_stderr`` nats needs (:mod:`retro.inference.adaptive`); ``particles_mean`` then says how many it
    used on average, ``pilot_particles_mean`` how many the pilots spent.

    The answers are scored, and the distinct questions decoded, in chunks of ``chunk_size``; in a data-parallel
    run (``world``, see :mod:`retro.distributed`) the ranks share the chunks and rank 0 returns the metrics (the
    same as one process: each answer's draws are keyed by ``seed`` and its index), the other ranks ``None``.
    """
    if beam < 1:
        raise RetroError(f"beam must be >= 1, got {beam}")
    method = evaluation_method(program, questions, answers)
    seed = seed if seed is not None else int(torch.randint(0, 2**62, ()))
    alone = world.size == 1

    def score(chunk, first):
        records, info = estimate(
            method,
            program,
            [p[0] for p in chunk],
            [p[1] for p in chunk],
            guide=guide,
            num_particles=num_particles,
            seed=seed,
            answer_ids=range(first, first + len(chunk)),
            progress=progress and alone,
            target_stderr=None if method == "exact" else target_stderr,
        )
        spent = [_per_answer(info, name, len(chunk)) for name in ("particles", "pilot_particles")]
        return [(r.to_dict(), used, pilot) for r, used, pilot in zip(records, *spent)]

    scored = [
        row for part in map_chunks(score, list(zip(questions, answers)), chunk_size, world) for row in part
    ]
    references = group_answers(questions, answers)
    distinct = list(references)

    def decode(chunk, first):
        return [h.answer for h in beam_search(program, chunk, beam, progress=progress and alone)]

    best = [answer for part in map_chunks(decode, distinct, chunk_size, world) for answer in part]
    if not world.is_main:
        return None
    records = [record_from_dict(row) for row, _, _ in scored]
    summary = summarize(records)
    codec = program.codec
    units = error_units(codec)
    tokens = sum(len(codec.encode(a)) + 1 for a in answers)  # + 1: the EOS
    words = sum(len(a.split()) + 1 for a in answers)  # + 1: the end of the answer
    total = sum(r.log_prob for r in records)
    return {
        "log_prob_mean": summary.log_prob_mean,
        "log_prob_stderr": summary.stderr,
        "perplexity_per_token": _exp(-total / tokens),
        "perplexity_per_word": _exp(-total / words),
        "wer": word_error_rate(distinct, best, references),
        "per": token_error_rate(distinct, best, references, units.tokenize),
        "per_name": units.name,
        "num_answers": len(records),
        "num_questions": len(distinct),
        "num_tokens": tokens,
        "method": summary.method,
        "unreliable_answers": summary.unreliable,
        "particles": num_particles,
        "beam": beam,
        **_budget(scored, target_stderr),
    }


def _per_answer(info, name: str, count: int) -> list[float | None]:
    values = info.diagnostics.get(name)
    return [float(v) for v in values.double().reshape(-1)] if values is not None else [None] * count


def _budget(scored, target_stderr: float | None) -> dict[str, Any]:
    """What adaptive budgets spent (empty without ``target_stderr`` or when the values were exact)."""
    if target_stderr is None or not scored or scored[0][1] is None:
        return {}
    return {
        "target_stderr": target_stderr,
        "particles_mean": sum(used for _, used, _ in scored) / len(scored),
        "pilot_particles_mean": sum(pilot for _, _, pilot in scored) / len(scored),
    }


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf
