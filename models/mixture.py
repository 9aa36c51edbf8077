"""``MixtureSeq2Seq``: an imitator with a discrete answering style per answer (exact log p by enumeration)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from retro.models.seq2seq import Seq2Seq
from retro.text import Codec, StringBatch

__all__ = ["MixtureSeq2Seq"]


class MixtureSeq2Seq(Seq2Seq):
    """Seq2Seq with a discrete answering style per answer (exact log p by enumeration).

    ``style ~ Categorical(pi(question))`` among ``num_styles``, decoder conditioned on (question, style)."""

    name = "mixture"

    def __init__(
        self,
        codec: Codec | None = None,
        max_length: int = 32,
        hidden_dim: int = 128,
        decoder: str = "gru",
        num_styles: int = 4,
        style_dim: int = 16,
        question_codec: Codec | None = None,
        dropout: float = 0.0,
    ):
        super().__init__(
            codec,
            max_length,
            hidden_dim,
            decoder,
            extra_context_dim=style_dim,
            question_codec=question_codec,
            dropout=dropout,
        )
        self.remember_config(num_styles=num_styles, style_dim=style_dim)  # Seq2Seq remembers the rest
        self.style_logits = nn.Linear(self.encoder.output_dim, num_styles)
        self.style_embedding = nn.Embedding(num_styles, style_dim)

    def model(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        question = self.encode(questions)
        with self.answers_plate(questions):
            style = pyro.sample("style", dist.Categorical(logits=self.style_logits(question.summary)))
            return self.observe(self.answer_distribution(question, self.style_embedding(style)), answers)
