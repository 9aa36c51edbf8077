"""Sampling temperature for any program: the same program with its answer distribution's logits divided by T.

:func:`tempered` wraps a program (built-in, human or custom) into another program whose ``answer`` site uses
temperature ``T`` in ``sample`` and ``log_prob`` alike, so the tempered program is still a normalized distribution
over strings: every estimator, sampler and report works on it unchanged. Latent sites are left as they are.

Example:
    >>> from retro.humans import make_human
    >>> cold = tempered(make_human("typist"), 0.5)
    >>> len(cold.sample(["word"], num_samples=3)[0])
    3
"""

from __future__ import annotations

from pyro.poutine.messenger import Messenger

from retro.distributions import StringDistribution
from retro.errors import RetroError
from retro.program import ANSWER_SITE, StringProgram
from retro.text import StringBatch

__all__ = ["tempered", "TemperedProgram"]


class _AnswerTemperature(Messenger):
    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = temperature

    def _pyro_sample(self, msg) -> None:
        if msg["name"] != ANSWER_SITE:
            return
        fn = msg["fn"]
        if not isinstance(fn, StringDistribution):
            raise RetroError(
                f"temperature needs the answer site to be a StringDistribution, got {type(fn).__name__}"
            )
        msg["fn"] = fn.with_temperature(self.temperature)


class TemperedProgram(StringProgram):
    """``program`` with its answer distribution at ``temperature`` (see :func:`tempered`)."""

    def __init__(self, program: StringProgram, temperature: float):
        super().__init__(program.codec, program.max_length, program.question_codec)
        if not temperature > 0:
            raise RetroError(f"temperature must be > 0, got {temperature}")
        self.program, self.temperature = program, float(temperature)

    def model(self, questions: StringBatch, answers: StringBatch | None = None):
        with _AnswerTemperature(self.temperature):
            return self.program.model(questions, answers)


def tempered(program: StringProgram, temperature: float) -> StringProgram:
    """``program`` at sampling ``temperature`` (1: the program itself)."""
    return program if temperature == 1.0 else TemperedProgram(program, temperature)
