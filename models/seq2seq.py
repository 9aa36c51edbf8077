"""``Seq2Seq``: encoder-decoder imitator with no latent variable (its log p is exact)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from retro.distributions import Memory, StringDistribution
from retro.errors import RetroError
from retro.models.base import Imitator
from retro.nets import StringEncoder, make_decoder
from retro.text import Codec, StringBatch

__all__ = ["Seq2Seq", "QuestionCode"]


class QuestionCode(NamedTuple):
    """A batch of encoded questions: one vector each ``[B, H]``, and their states for an attention decoder."""

    summary: torch.Tensor
    memory: Memory | None


class Seq2Seq(Imitator):
    """Encoder-decoder with no latent variable (exact log p).

    Question encoder (bidirectional GRU) -> context -> decoder over answers: ``"gru"`` (the question as one
    vector), ``"attention"`` (also attends to the encoder's state at every character of the question) or
    ``"transformer"``. ``dropout`` regularizes encoder and decoder during training (see :class:`retro.nets.GRUDecoder`).

    Subclasses add latent variables by passing ``extra_context_dim`` and calling :meth:`answer_distribution`
    with a latent code that broadcasts against the question code.
    """

    name = "seq2seq"

    def __init__(
        self,
        codec: Codec | None = None,
        max_length: int = 32,
        hidden_dim: int = 128,
        decoder: str = "gru",
        extra_context_dim: int = 0,
        question_codec: Codec | None = None,
        dropout: float = 0.0,
    ):
        super().__init__(codec, max_length, question_codec)
        if not 0.0 <= dropout < 1.0:
            raise RetroError(f"dropout must be in [0, 1), got {dropout}")
        self.remember_config(hidden_dim=hidden_dim, decoder=decoder, dropout=dropout)
        self.encoder = StringEncoder(self.question_codec.vocab_size, hidden_dim // 2, dropout=dropout)
        self.decoder = make_decoder(
            decoder,
            self.codec.vocab_size,
            self.encoder.output_dim + extra_context_dim,
            hidden_dim,
            memory_dim=self.encoder.output_dim,
            dropout=dropout,
        )
        self.attends = decoder == "attention"

    def encode(self, questions: StringBatch) -> QuestionCode:
        """The questions' code (with their states when the decoder attends)."""
        if self.attends:
            return QuestionCode(*self.encoder.encode(questions))
        return QuestionCode(self.encoder(questions), None)

    def answer_distribution(self, question: QuestionCode | torch.Tensor, extra: torch.Tensor | None = None):
        """Distribution of the answer given the question code (:meth:`encode`; a bare ``[B, H]`` summary serves a
        decoder that does not attend) and an optional latent code ``[..., B, E]``."""
        if isinstance(question, torch.Tensor):
            if self.attends:
                raise RetroError(
                    f"{type(self).__name__}: the attention decoder needs the question's states: pass "
                    "self.encode(questions), not a summary tensor"
                )
            question = QuestionCode(question, None)
        context = question.summary
        if extra is not None:
            shape = torch.broadcast_shapes(context.shape[:-1], extra.shape[:-1])
            context = torch.cat(
                [context.expand(shape + context.shape[-1:]), extra.expand(shape + extra.shape[-1:])], dim=-1
            )
        return StringDistribution(
            self.decoder, context, self.max_length, self.codec.eos, memory=question.memory
        )

    def model(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        question = self.encode(questions)
        with self.answers_plate(questions):
            return self.observe(self.answer_distribution(question), answers)
