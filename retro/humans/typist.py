"""A human copying words with a per-answer sloppiness (a continuous 1-D latent; exact log p by quadrature)."""

from __future__ import annotations

import random
from importlib import resources

import pyro
import pyro.distributions as dist
import torch

from retro.humans.base import SyntheticHuman
from retro.text import StringBatch

__all__ = ["TypistHuman", "WORDS"]

WORDS: tuple[str, ...] = tuple(resources.files("retro.humans").joinpath("words.txt").read_text().split())


class TypistHuman(SyntheticHuman):
    """Questions are English words; the answer is the word retyped. Each answer has its own sloppiness
    ``z ~ Normal(0, 1)`` and typo rate ``sigmoid(-3 + 1.5 z)`` (about 5% typical, up to ~50% on a bad day)."""

    name = "typist"
    description = "words retyped with typos; continuous 1-D sloppiness latent (exact by quadrature)"
    typo_alphabet = "abcdefghijklmnopqrstuvwxyz"

    def intended(self, question: str, style: str) -> str:
        return question

    def draw_question(self, rng: random.Random) -> str:
        return rng.choice(WORDS)

    def model(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        intended = self._intended_tokens(questions)[:, 0]
        zero = torch.zeros((), device=intended.device)
        with self.answers_plate(questions):
            z = pyro.sample("sloppiness", dist.Normal(zero, 1.0))
            rate = torch.sigmoid(-3.0 + 1.5 * z)
            return self.observe(self.answer_distribution(intended, rate), answers)
