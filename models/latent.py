"""``LatentSeq2Seq``: a VAE-style imitator with a Gaussian latent per answer."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from retro.models.seq2seq import Seq2Seq
from retro.text import Codec, StringBatch

__all__ = ["LatentSeq2Seq"]


class LatentSeq2Seq(Seq2Seq):
    """Seq2Seq with a Gaussian latent z per answer (VAE-style; estimate log p by importance sampling).

    ``z ~ Normal(0, I_d)`` per answer (how this person answers this time), decoder conditioned on (question, z). log p(answer | question) integrates z out: estimate it (or, for ``latent_dim=1``, compute it
    by quadrature with the ``exact`` method)."""

    name = "latent"

    def __init__(
        self,
        codec: Codec | None = None,
        max_length: int = 32,
        hidden_dim: int = 128,
        decoder: str = "gru",
        latent_dim: int = 8,
        question_codec: Codec | None = None,
        dropout: float = 0.0,
    ):
        super().__init__(
            codec,
            max_length,
            hidden_dim,
            decoder,
            extra_context_dim=latent_dim,
            question_codec=question_codec,
            dropout=dropout,
        )
        self.remember_config(latent_dim=latent_dim)  # Seq2Seq remembers the rest
        self.latent_dim = latent_dim

    def model(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        question = self.encode(questions)
        zeros = question.summary.new_zeros(self.latent_dim)
        with self.answers_plate(questions):
            z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            return self.observe(self.answer_distribution(question, z), answers)
