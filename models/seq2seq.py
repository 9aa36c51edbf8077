"""``Seq2Seq``: encoder-decoder imitator with no latent variable (its log p is exact)."""

from __future__ import annotations

import torch

from retro.distributions import StringDistribution
from retro.models.base import Imitator
from retro.nets import StringEncoder, make_decoder
from retro.text import Codec, StringBatch

__all__ = ["Seq2Seq"]


class Seq2Seq(Imitator):
    """Encoder-decoder with no latent variable (exact log p).

    Question encoder (bidirectional GRU) -> context -> decoder (``"gru"`` or ``"transformer"``) over answers.

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
    ):
        super().__init__(codec, max_length)
        self.remember_config(hidden_dim=hidden_dim, decoder=decoder)
        self.encoder = StringEncoder(self.codec.vocab_size, hidden_dim // 2)
        self.decoder = make_decoder(
            decoder, self.codec.vocab_size, self.encoder.output_dim + extra_context_dim, hidden_dim
        )

    def answer_distribution(self, question_code: torch.Tensor, extra: torch.Tensor | None = None):
        """Distribution of the answer given question codes ``[B, H]`` and an optional latent code ``[..., B, E]``."""
        context = question_code
        if extra is not None:
            shape = torch.broadcast_shapes(question_code.shape[:-1], extra.shape[:-1])
            context = torch.cat(
                [
                    question_code.expand(shape + question_code.shape[-1:]),
                    extra.expand(shape + extra.shape[-1:]),
                ],
                dim=-1,
            )
        return StringDistribution(self.decoder, context, self.max_length, self.codec.eos)

    def model(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        code = self.encoder(questions)
        with self.answers_plate(questions):
            return self.observe(self.answer_distribution(code), answers)
