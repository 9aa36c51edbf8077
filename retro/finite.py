"""Programs whose answer, for each question, is drawn from an explicit finite list of strings with weights.

Experiments need answer laws that are known exactly and are not neural: a human choosing uniformly among a
question's valid answers, a steganographic imitator, a constraint imitator uniform over the solutions of a puzzle.
:class:`FiniteProgram` turns ``candidates(question) -> [(answer, log_weight), ...]`` into a program that follows
the Imitator contract (one ``answer`` site in the ``answers`` plate, any batch shape), so every estimator, the
report and the discriminators work on it. Its ``answer`` distribution, :class:`FiniteStringDistribution`, scores a
string by looking it up among the candidates (probability 0 when absent) and samples by a categorical draw, both
vectorized over the batch.

Example:
    >>> coin = FiniteProgram(lambda question: [("heads", 0.0), ("tails", 0.0)], max_length=8)
    >>> from retro.inference import exact
    >>> round(exact(coin, ["toss"], ["heads"])[0].log_prob, 4)
    -0.6931
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

from retro.errors import RetroError
from retro.program import StringProgram
from retro.text import Codec, StringBatch

__all__ = ["FiniteStringDistribution", "FiniteProgram"]

Candidates = Sequence[tuple[str, float]]


class FiniteStringDistribution(TorchDistribution):
    """For each batch element, a categorical over a padded list of candidate strings.

    Args:
        tokens: ``LongTensor[*batch, M, W]`` EOS-padded candidate strings (padding rows are never drawn).
        log_probs: ``Tensor[*batch, M]`` normalized log probabilities, ``-inf`` for padding rows.
        eos: the EOS token id.
    """

    arg_constraints: dict = {}
    has_enumerate_support = False

    def __init__(
        self, tokens: torch.Tensor, log_probs: torch.Tensor, eos: int, validate_args: bool | None = None
    ):
        self.tokens, self.log_probs, self.eos = tokens, log_probs, int(eos)
        super().__init__(log_probs.shape[:-1], tokens.shape[-1:], validate_args=False)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self):
        return constraints.independent(constraints.nonnegative_integer, 1)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return FiniteStringDistribution(
            self.tokens.expand(batch_shape + self.tokens.shape[-2:]),
            self.log_probs.expand(batch_shape + self.log_probs.shape[-1:]),
            self.eos,
        )

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        width, eos, too_long = self.tokens.shape[-1], self.eos, None
        if value.shape[-1] < width:  # a narrower batch: pad with EOS to compare whole strings
            pad = value.new_full(value.shape[:-1] + (width - value.shape[-1],), eos)
            value = torch.cat([value, pad], dim=-1)
        elif (
            value.shape[-1] > width
        ):  # a wider batch: a match needs EOS everywhere past the candidates' width
            too_long = (value[..., width:] != eos).any(-1)
            value = value[..., :width]
        match = (value[..., None, :] == self.tokens).all(-1)  # [*shape, M]
        log_prob = self.log_probs.masked_fill(~match, -math.inf).logsumexp(-1)
        if too_long is not None:
            log_prob = log_prob.masked_fill(too_long, -math.inf)
        return log_prob

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        index = torch.distributions.Categorical(logits=self.log_probs).sample(sample_shape)
        tokens = self.tokens.expand(torch.Size(sample_shape) + self.tokens.shape)
        return tokens.gather(-2, index[..., None, None].expand(index.shape + (1, tokens.shape[-1]))).squeeze(
            -2
        )


class FiniteProgram(StringProgram):
    """A program drawing each answer from ``candidates(question)``: ``(answer, log_weight)`` pairs, normalized
    here. Candidate lists are cached per question; a candidate longer than ``max_length`` is an error."""

    def __init__(
        self, candidates: Callable[[str], Candidates], codec: Codec | None = None, max_length: int = 32
    ):
        super().__init__(codec, max_length)
        self.candidates = candidates
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _encoded(self, question: str) -> tuple[torch.Tensor, torch.Tensor]:
        if question not in self._cache:
            pairs = list(self.candidates(question))
            if not pairs:
                raise RetroError(f"{type(self).__name__}: no candidate answers for question {question!r}")
            strings = [answer for answer, _ in pairs]
            batch = StringBatch.from_strings(strings, self.codec, self.max_length, what="candidate answer")
            tokens = torch.full((len(strings), self.max_length + 1), self.codec.eos, dtype=torch.long)
            tokens[:, : batch.width] = batch.tokens
            weights = torch.tensor([w for _, w in pairs], dtype=torch.get_default_dtype())
            self._cache[question] = (tokens, weights.log_softmax(0))
        return self._cache[question]

    def answer_distribution(self, questions: StringBatch) -> FiniteStringDistribution:
        encoded = [self._encoded(q) for q in questions.to_strings(self.question_codec)]
        most = max(len(weights) for _, weights in encoded)
        tokens = torch.full((len(encoded), most, self.max_length + 1), self.codec.eos, dtype=torch.long)
        log_probs = torch.full((len(encoded), most), -math.inf)
        for i, (t, w) in enumerate(encoded):
            tokens[i, : len(w)], log_probs[i, : len(w)] = t, w
        device = questions.tokens.device
        return FiniteStringDistribution(tokens.to(device), log_probs.to(device), self.codec.eos)

    def model(self, questions: StringBatch, answers: StringBatch | None = None) -> torch.Tensor:
        distribution = self.answer_distribution(questions)
        with self.answers_plate(questions):
            return self.observe(distribution, answers)
