"""The base of every Pyro program over strings: built-in imitators, synthetic humans and users' own imitators.

The contract (see :mod:`retro.models.base` for the user-facing description):

* a ``PyroModule`` with ``model(questions, answers=None)``, both :class:`~retro.text.StringBatch` (``answers``
  ``None`` means "sample them");
* one plate named ``"answers"`` at ``dim=-1`` over the batch, holding one observed site named ``"answer"`` whose
  distribution is a whole-string distribution; latent sites are local to that plate;
* code that broadcasts, so that estimators can wrap the model in a particle plate at ``dim=-2`` (and enumeration
  can use the dims left of that).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.nn import PyroModule

from retro.checks import check_positive_integer, check_strings
from retro.errors import RetroError
from retro.text import ByteCodec, Codec, StringBatch

__all__ = ["StringProgram", "ANSWER_SITE", "ANSWER_PLATE", "PARTICLE_DIM"]

ANSWER_SITE = "answer"
ANSWER_PLATE = "answers"
PARTICLE_DIM = -2


class StringProgram(PyroModule):
    """A generative program p(answer, latents | question) over strings.

    Args:
        codec: how answers (and, unless ``question_codec`` is given, questions) become tokens (default UTF-8
            bytes + EOS: any string is possible).
        max_length: the longest answer in tokens; longer answers have probability 0 and are rejected on input.
        question_codec: how questions become tokens, when they are not written like answers (words in,
            phonemes out).
    """

    def __init__(self, codec: Codec | None = None, max_length: int = 32, question_codec: Codec | None = None):
        super().__init__()
        self.codec = codec if codec is not None else ByteCodec()
        self.question_codec = question_codec if question_codec is not None else self.codec
        self.max_length = int(max_length)

    # -- the contract ------------------------------------------------------------------------------------------
    def model(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        return self.model(questions, answers)

    def answers_plate(self, questions: StringBatch):
        """The plate every program puts its answer (and local latents) in."""
        return pyro.plate(ANSWER_PLATE, len(questions), dim=-1)

    def observe(self, distribution, answers: StringBatch | None) -> torch.Tensor:
        """The one ``answer`` site; call it inside :meth:`answers_plate`."""
        return pyro.sample(ANSWER_SITE, distribution, obs=None if answers is None else answers.tokens)

    # -- conveniences over strings -----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for tensor in list(self.parameters()) + list(self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def encode_questions(self, questions: Sequence[str]) -> StringBatch:
        return StringBatch.from_strings(questions, self.question_codec, device=self.device, what="question")

    def encode_answers(self, answers: Sequence[str]) -> StringBatch:
        return StringBatch.from_strings(
            answers, self.codec, self.max_length, device=self.device, what="answer"
        )

    @torch.no_grad()
    def sample(self, questions: Sequence[str], num_samples: int = 1) -> list[list[str]]:
        """``num_samples`` answers for each question, drawn by running the program forward."""
        check_strings(questions, "sample: questions")
        if not questions:
            raise RetroError("sample: no questions")
        check_positive_integer(num_samples, "sample: num_samples")
        batch = self.encode_questions(questions)
        with pyro.plate("particles", num_samples, dim=PARTICLE_DIM):
            trace = poutine.trace(self.model).get_trace(batch, None)
        tokens = trace.nodes[ANSWER_SITE]["value"]  # [S, B, L+1] (S=1 may be broadcast away)
        tokens = tokens.expand((num_samples, len(questions), tokens.shape[-1]))
        texts = StringBatch.from_tokens(tokens, self.codec.eos).to_strings(self.codec)
        return [[texts[s * len(questions) + b] for s in range(num_samples)] for b in range(len(questions))]

    def config(self) -> dict[str, Any]:
        """What is needed to rebuild this program (without weights), as JSON-able data."""
        config = {"codec": self.codec.config(), "max_length": self.max_length}
        if self.question_codec != self.codec:
            config["question_codec"] = self.question_codec.config()
        return config
