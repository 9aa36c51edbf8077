"""Held-out evaluation of an imitator: log p, perplexity, and the 1-best answers' error rates (WER, PER).

* ``log_prob_mean`` / ``log_prob_stderr``: mean log p per human answer and the standard error of that dataset mean
  (exact when the latents can be summed out: none, or discrete ones with few values; else importance sampling with
  the guide when the model has one, else with the prior).
* ``perplexity_per_token``: ``exp(-sum log p / sum tokens)``, where an answer's tokens are its codec tokens
  *including* the EOS that ends it (so the empty answer counts one token and the rate is finite for any data);
  ``perplexity_per_word``: the same per whitespace-separated word plus one for the end (per phoneme, for G2P).
* ``wer`` / ``per``: the 1-best answer per distinct question (beam search, latents at the prior mode, see
  :mod:`retro.inference.decoding`) against that question's human answers: WER counts questions whose 1-best equals
  none of them; PER is the corpus token error rate against the closest one, over whitespace-separated tokens
  (see :mod:`retro.inference.metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from retro.errors import RetroError
from retro.inference.decoding import MAX_ENUMERATED, beam_search
from retro.inference.metrics import group_answers, phoneme_error_rate, word_error_rate
from retro.inference.registry import estimate
from retro.inference.results import summarize
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
) -> dict[str, Any]:
    """The metrics of ``program`` (with its ``guide``, if any) on held-out pairs (see the module docstring)."""
    if beam < 1:
        raise RetroError(f"beam must be >= 1, got {beam}")
    method = evaluation_method(program, questions, answers)
    records = estimate(
        method,
        program,
        questions,
        answers,
        guide=guide,
        num_particles=num_particles,
        seed=seed,
        progress=progress,
    ).records
    summary = summarize(records)
    codec = program.codec
    tokens = sum(len(codec.encode(a)) + 1 for a in answers)  # + 1: the EOS
    words = sum(len(a.split()) + 1 for a in answers)  # + 1: the end of the answer
    total = sum(r.log_prob for r in records)
    references = group_answers(questions, answers)
    distinct = list(references)
    best = [h.answer for h in beam_search(program, distinct, beam, progress=progress)]
    return {
        "log_prob_mean": summary.log_prob_mean,
        "log_prob_stderr": summary.stderr,
        "perplexity_per_token": _exp(-total / tokens),
        "perplexity_per_word": _exp(-total / words),
        "wer": word_error_rate(distinct, best, references),
        "per": phoneme_error_rate(distinct, best, references),
        "num_answers": len(records),
        "num_questions": len(distinct),
        "num_tokens": tokens,
        "method": summary.method,
        "particles": num_particles,
        "beam": beam,
    }


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf
