"""What every synthetic human shares: a noisy-copy answer distribution and a data generator.

A synthetic human has an intended answer for each (question, style) and types it with typos: at each position it
types the intended character with probability 1 - rate, and otherwise a key drawn uniformly from its typo alphabet
plus "enter" (EOS: stopping early is a typo too); after the intended answer ends, "the intended character" is EOS.
So every string over the typo alphabet has non-zero probability under every style. The next-token law depends on the
position only, so log p is exact and cheap, and the answer is a :class:`~retro.distributions.StringDistribution`
like any imitator's: normalized over all strings up to ``max_length``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from retro.distributions import StringDistribution
from retro.errors import RetroError
from retro.program import StringProgram
from retro.text import Codec, StringBatch

__all__ = ["NoisyCopyDecoder", "SyntheticHuman", "StyledHuman"]


class NoisyCopyDecoder(nn.Module):
    """Decoder whose context is ``[intended tokens (max_length + 1 floats), typo rate]``."""

    def __init__(self, vocab_size: int, typo_tokens: Sequence[int]):
        super().__init__()
        self.vocab_size = vocab_size
        self.bos = vocab_size
        typo_mask = torch.zeros(vocab_size, dtype=torch.float64)
        typo_mask[list(typo_tokens)] = 1.0
        self.register_buffer("typo_probs", typo_mask / typo_mask.sum(), persistent=False)

    def _log_probs(self, context: torch.Tensor, start: int, steps: int, tokens: torch.Tensor) -> torch.Tensor:
        """log p of ``tokens`` at positions ``start .. start + steps - 1``: ``tokens[N, T]`` gives ``[N, T]``;
        the whole vocabulary ``tokens[1, 1, V]`` gives ``[N, T, V]``."""
        intended = context[:, start : start + steps].long()  # [N, T]
        rate = context[:, -1:].to(self.typo_probs.dtype)  # [N, 1]
        if tokens.dim() == 3:  # a trailing vocabulary dimension
            intended, rate = intended[..., None], rate[..., None]
        probs = (1 - rate) * (tokens == intended) + rate * self.typo_probs[tokens]
        return probs.log().to(context.dtype)

    def _logits(self, context: torch.Tensor, start: int, steps: int) -> torch.Tensor:
        vocabulary = torch.arange(self.vocab_size, device=context.device).reshape(1, 1, -1)
        return self._log_probs(context, start, steps, vocabulary)

    def forward(self, context: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self._logits(context, 0, tokens.shape[1])

    def token_log_probs(self, context: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self._log_probs(context, 0, tokens.shape[1], tokens)

    def init_state(self, context: torch.Tensor):
        return (context, 0)

    def step(self, state, previous: torch.Tensor):
        context, position = state
        return self._logits(context, position, 1)[:, 0], (context, position + 1)


class SyntheticHuman(StringProgram):
    """Base class of the built-in humans: ground-truth programs with exactly computable log p.

    Subclasses set ``name``, ``styles`` (names of the intended-answer styles), ``typo_alphabet``, and implement
    :meth:`intended` and :meth:`draw_question`, and :meth:`model` (which latents exist).
    """

    name: str = ""
    description: str = ""
    styles: tuple[str, ...] = ("plain",)
    typo_alphabet: str = ""

    def __init__(self, codec: Codec | None = None, max_length: int = 32):
        super().__init__(codec, max_length)
        typo_tokens = self.codec.encode(self.typo_alphabet) + [self.codec.eos]
        self.decoder = NoisyCopyDecoder(self.codec.vocab_size, typo_tokens)
        self._intended_cache: dict[str, list[list[int]]] = {}

    def intended(self, question: str, style: str) -> str:
        """The answer this human means to type for ``question`` in ``style``."""
        raise NotImplementedError

    def draw_question(self, rng: random.Random) -> str:
        raise NotImplementedError

    def _intended_tokens(self, questions: StringBatch) -> torch.Tensor:
        """``LongTensor[B, styles, max_length + 1]`` of intended answers, EOS-padded (cut at max_length)."""
        rows = []
        for question in questions.to_strings(self.question_codec):
            if question not in self._intended_cache:
                per_style = []
                for style in self.styles:
                    ids = self.codec.encode(self.intended(question, style))[: self.max_length]
                    per_style.append(ids + [self.codec.eos] * (self.max_length + 1 - len(ids)))
                self._intended_cache[question] = per_style
            rows.append(self._intended_cache[question])
        return torch.tensor(rows, dtype=torch.long, device=questions.tokens.device)

    def answer_distribution(self, intended: torch.Tensor, rate: torch.Tensor) -> StringDistribution:
        """Noisy copy of ``intended[..., max_length + 1]`` with typo ``rate[...]`` (broadcast together)."""
        shape = torch.broadcast_shapes(intended.shape[:-1], rate.shape)
        rate = rate.to(torch.get_default_dtype())
        context = torch.cat(
            [intended.expand(shape + intended.shape[-1:]).to(rate.dtype), rate.expand(shape)[..., None]], -1
        )
        return StringDistribution(self.decoder, context, self.max_length, self.codec.eos)

    def draw(self, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
        """``n`` (question, answer) pairs: questions from this human's question law, answers from the program."""
        if n < 1:
            raise RetroError(f"number of pairs must be >= 1, got {n}")
        rng = random.Random(seed)
        questions = [self.draw_question(rng) for _ in range(n)]
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            answers = [samples[0] for samples in self.sample(questions)]
        return questions, answers

    def config(self) -> dict[str, Any]:
        return {"human": self.name, **super().config()}


class StyledHuman(SyntheticHuman):
    """A human whose per-answer latent is a discrete style (prior ``style_probs``), each with its typo rate."""

    style_probs: tuple[float, ...] = (1.0,)
    typo_rates: tuple[float, ...] = (0.0,)

    def model(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        intended = self._intended_tokens(questions)
        probs = torch.tensor(self.style_probs, device=intended.device)
        rates = torch.tensor(self.typo_rates, device=intended.device)
        with self.answers_plate(questions):
            style = pyro.sample("style", dist.Categorical(probs))
            chosen = intended[torch.arange(len(questions), device=intended.device), style]
            return self.observe(self.answer_distribution(chosen, rates[style]), answers)
