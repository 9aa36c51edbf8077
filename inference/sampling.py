"""Drawing answers from a program by running it forward, with the log p of each run where training needs it.

Several answers per question come out *sample-major*: row ``s * B + b`` answers question ``b`` of ``B``, so a
``[S * B]`` tensor reshapes to ``[S, B]`` (the adversarial objective's leave-one-out baseline, the typicality test).
"""

from __future__ import annotations

import torch
from pyro import poutine

from retro.inference.sites import trace_log_prob
from retro.program import ANSWER_SITE, StringProgram
from retro.text import StringBatch

__all__ = ["repeat_questions", "sample_with_log_prob", "sample_answers"]


def repeat_questions(questions: StringBatch, num_samples: int) -> StringBatch:
    """``questions`` repeated ``num_samples`` times, sample-major."""
    return questions[torch.arange(len(questions)).repeat(num_samples)]


def sample_with_log_prob(program: StringProgram, questions: StringBatch) -> tuple[StringBatch, torch.Tensor]:
    """One answer per question from ``program`` and ``log p(latents, answer | question)`` of that run ``[B]``,
    differentiable with respect to the program's parameters."""
    trace = poutine.trace(program.model).get_trace(questions, None)
    log_prob = trace_log_prob(trace)
    tokens = trace.nodes[ANSWER_SITE]["value"].expand(len(questions), -1)
    return StringBatch.from_tokens(tokens.detach(), program.codec.eos), log_prob.expand(len(questions))


@torch.no_grad()
def sample_answers(
    program: StringProgram, questions: StringBatch, num_samples: int
) -> tuple[StringBatch, StringBatch]:
    """``num_samples`` answers per question as token batches ``(questions, answers)`` of ``num_samples * B``
    rows, sample-major."""
    repeated = repeat_questions(questions, num_samples)
    answers, _ = sample_with_log_prob(program, repeated)
    return repeated, answers
