"""Training discriminators, and the classifier two-sample test (Lopez-Paz & Oquab 2017).

The test: train a discriminator on half of the human answers and as many imitator answers, then classify the other
halves. If the imitator answers like the human, held-out accuracy is 50% up to binomial noise; the exact
(Clopper-Pearson) confidence interval of the accuracy and the one-sided binomial p-value of "accuracy > 50%" say
how sure that is.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from scipy import stats
from torch import nn
from tqdm import tqdm

from retro.discriminators import Discriminator, NeuralDiscriminator
from retro.errors import RetroError
from retro.text import StringBatch

__all__ = [
    "discriminator_loss",
    "train_discriminator",
    "discriminator_accuracy",
    "classifier_two_sample_test",
    "TwoSampleResult",
    "binomial_summary",
]

Pairs = tuple[StringBatch, StringBatch]  # (questions, answers) as token batches of the same length


def discriminator_loss(disc: Discriminator, human: Pairs, imitator: Pairs) -> torch.Tensor:
    """Mean binary cross-entropy of "human" on human pairs and "imitator" on imitator pairs."""
    real, fake = disc.logits(*human), disc.logits(*imitator)
    bce = nn.functional.binary_cross_entropy_with_logits
    return 0.5 * (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))


def train_discriminator(
    disc: NeuralDiscriminator,
    human: Pairs,
    imitator: Pairs,
    steps: int = 300,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
    progress: bool = False,
) -> NeuralDiscriminator:
    """Fit ``disc`` to tell ``human`` pairs from ``imitator`` pairs (minibatches of each, Adam)."""
    if not len(human[1]) or not len(imitator[1]):
        raise RetroError("train_discriminator needs human and imitator pairs (got an empty set)")
    rng = random.Random(seed)
    optimizer = torch.optim.Adam(disc.parameters(), lr=learning_rate)
    disc.train()
    for _ in tqdm(range(steps), desc="discriminator", unit="step", disable=not progress, leave=False):
        batches = []
        for questions, answers in (human, imitator):
            index = rng.sample(range(len(answers)), min(batch_size, len(answers)))
            batches.append((questions[index], answers[index]))
        loss = discriminator_loss(disc, *batches)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    disc.eval()
    return disc


@torch.no_grad()
def discriminator_accuracy(disc: Discriminator, human: Pairs, imitator: Pairs) -> tuple[int, int]:
    """``(correct, total)`` over both sets: human pairs need logit > 0, imitator pairs logit <= 0."""
    real, fake = disc.logits(*human), disc.logits(*imitator)
    correct = int((real > 0).sum()) + int((fake <= 0).sum())
    return correct, len(real) + len(fake)


@dataclass(frozen=True)
class TwoSampleResult:
    """Held-out accuracy of a discriminator, its ``level`` Clopper-Pearson interval, and the binomial p-value of
    "accuracy > 0.5" (small: the imitator is told apart from the human)."""

    accuracy: float
    ci_low: float
    ci_high: float
    p_value: float
    correct: int
    total: int
    level: float

    def to_dict(self) -> dict:
        return asdict(self)


def binomial_summary(correct: int, total: int, level: float = 0.95) -> TwoSampleResult:
    """Accuracy, exact confidence interval and one-sided p-value against chance for ``correct`` of ``total``."""
    if total < 1:
        raise RetroError("an accuracy needs at least one classified pair")
    alpha = 1 - level
    low = stats.beta.ppf(alpha / 2, correct, total - correct + 1) if correct > 0 else 0.0
    high = stats.beta.ppf(1 - alpha / 2, correct + 1, total - correct) if correct < total else 1.0
    p_value = stats.binomtest(correct, total, 0.5, alternative="greater").pvalue
    return TwoSampleResult(correct / total, float(low), float(high), float(p_value), correct, total, level)


def classifier_two_sample_test(
    human: Pairs,
    imitator: Pairs,
    make_discriminator: Callable[[], Discriminator],
    train_fraction: float = 0.5,
    steps: int = 300,
    seed: int = 0,
    level: float = 0.95,
    progress: bool = False,
) -> TwoSampleResult:
    """Train a fresh discriminator on ``train_fraction`` of each set and test it on the rest.

    Both sets should be answers to the same questions (one imitator answer per human answer) so that only the
    answers differ. A discriminator without parameters (a verifier) is only tested.
    """
    if len(human[1]) != len(imitator[1]):
        raise RetroError(
            f"two-sample test: {len(human[1])} human answers but {len(imitator[1])} imitator answers"
        )
    n_train = int(math.floor(train_fraction * len(human[1])))
    if n_train < 1 or n_train >= len(human[1]):
        raise RetroError(f"two-sample test: need pairs on both sides of the split, got {len(human[1])} pairs")
    order = list(range(len(human[1])))
    random.Random(seed).shuffle(order)
    train_index, test_index = order[:n_train], order[n_train:]

    def part(pairs: Pairs, index) -> Pairs:
        return pairs[0][index], pairs[1][index]

    torch.manual_seed(seed)  # the discriminator's initial weights too
    disc = make_discriminator()
    if any(True for _ in disc.parameters()):
        train_discriminator(
            disc, part(human, train_index), part(imitator, train_index), steps, seed=seed, progress=progress
        )
    correct, total = discriminator_accuracy(disc, part(human, test_index), part(imitator, test_index))
    return binomial_summary(correct, total, level)
