"""Adversarial training of an imitator program against a discriminator, reusing the program as the sampler.

Each step draws one answer per question by running the imitator's own ``model`` forward, then

1. updates the discriminator (binary cross-entropy: human pairs vs the imitator's pairs), and
2. returns the generator's surrogate loss, the score-function (REINFORCE) estimator of the gradient of
   ``-E[r(question, answer)]`` with the reward ``r`` = the discriminator's logit (which, for an optimal
   discriminator, is ``log p_human / p_imitator``: the imitator then minimizes KL(imitator || human)):

       loss = -mean((r - b) * log p(latents, answer | question)),

   where ``log p`` sums every sample site of the program's trace (so discrete and continuous latents alike get a
   gradient, and no second copy of the model is written) and ``b`` is a baseline: with ``samples_per_question``
   S > 1 answers per question, the mean reward of the question's *other* S - 1 answers (leave-one-out, as in
   RLOO / VIMCO: it lowers the variance a lot and leaves the gradient unbiased); with S = 1, a moving average of
   the reward.

The guide (when the imitator has latents) takes no part in the game; it is fitted by the ELBO with respect to its
own parameters only, so that held-out log p can still be estimated by importance sampling with it. ``retrodiction``
weight > 0 gives the mixed objective: the (negative) ELBO per answer plus ``adversarial_weight`` times the above.
"""

from __future__ import annotations

import torch
from torch import nn

from retro.discriminators import Discriminator
from retro.errors import RetroError
from retro.inference.guides import AmortizedGuide
from retro.inference.sampling import repeat_questions, sample_with_log_prob
from retro.inference.train import elbo_loss
from retro.inference.two_sample import discriminator_loss
from retro.program import StringProgram
from retro.text import StringBatch

__all__ = ["AdversarialObjective"]


class AdversarialObjective(nn.Module):
    """A training objective ``(questions, answers) -> loss`` for :func:`~retro.inference.train.train`.

    Args:
        imitator: the generator (any program following the Imitator contract).
        discriminator: a :class:`~retro.discriminators.NeuralDiscriminator` (trained here) or a verifier one.
        guide: the imitator's guide, fitted by the ELBO on human answers (its parameters only), or ``None``.
        adversarial_weight: lambda, the weight of the adversarial loss.
        retrodiction_weight: weight of the ELBO loss on the imitator (0: purely adversarial; 1: mixed).
        discriminator_lr: Adam step size of the discriminator.
        baseline_decay: decay of the moving-average reward baseline (``samples_per_question=1``).
        samples_per_question: answers drawn per question and step (leave-one-out baseline when > 1).
    """

    def __init__(
        self,
        imitator: StringProgram,
        discriminator: Discriminator,
        guide: AmortizedGuide | None = None,
        adversarial_weight: float = 1.0,
        retrodiction_weight: float = 0.0,
        discriminator_lr: float = 1e-3,
        baseline_decay: float = 0.9,
        samples_per_question: int = 4,
    ):
        super().__init__()
        if any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in imitator.modules()):
            # A sample drawn step by step and its teacher-forced log p would see different dropout masks, so the
            # score-function gradient would be for another distribution than the one sampled.
            raise RetroError("adversarial training needs an imitator without dropout (give dropout=0)")
        self.imitator, self.discriminator, self.guide = imitator, discriminator, guide
        self.adversarial_weight, self.retrodiction_weight = adversarial_weight, retrodiction_weight
        self.elbo = elbo_loss(imitator, guide) if (guide is not None or retrodiction_weight > 0) else None
        params = list(discriminator.parameters())
        self.disc_optimizer = torch.optim.Adam(params, lr=discriminator_lr) if params else None
        self.guide_optimizer = (
            torch.optim.Adam(guide.parameters(), lr=1e-3)
            if guide is not None and retrodiction_weight == 0
            else None
        )
        if int(samples_per_question) != samples_per_question or samples_per_question < 1:
            raise RetroError(f"samples_per_question must be a positive integer, got {samples_per_question}")
        self.baseline_decay, self.samples = baseline_decay, int(samples_per_question)
        self.baseline: float | None = None
        self.last: dict[str, float] = {}
        self._sums: dict[str, tuple[float, int]] = {}  # this step's per-slice means, until finish_step
        self._pending_guide: list[torch.Tensor] | None = None

    def forward(self, questions: StringBatch, answers: StringBatch) -> torch.Tensor:
        """The generator's loss on this minibatch (or slice of one); the discriminator's and the guide's gradients
        accumulate here and are applied by :meth:`finish_step`, once per optimizer step."""
        repeated = repeat_questions(questions, self.samples)
        fake, log_prob = sample_with_log_prob(self.imitator, repeated)
        with (
            torch.no_grad()
        ):  # scored before the discriminator learns from these very samples (no feedback bias)
            reward = self.discriminator.logits(repeated, fake).to(log_prob.device, log_prob.dtype)
        if self.disc_optimizer is not None:
            disc_loss = discriminator_loss(self.discriminator, (questions, answers), (repeated, fake))
            disc_loss.backward()
            self._tally("discriminator_loss", disc_loss.item())
        mean_reward = reward.mean().item()
        self._tally("reward", mean_reward)
        if self.samples > 1:  # leave-one-out: the mean reward of the question's other answers
            per_question = reward.reshape(self.samples, len(questions))
            baseline = ((per_question.sum(0, keepdim=True) - per_question) / (self.samples - 1)).reshape(-1)
        else:  # the moving average of past steps' mean rewards (this minibatch's own at the first step)
            baseline = mean_reward if self.baseline is None else self.baseline
        loss = -self.adversarial_weight * ((reward - baseline) * log_prob).mean()
        if self.elbo is not None:
            negative_elbo = self.elbo(questions, answers) / len(answers)
            if (
                self.guide_optimizer is not None
            ):  # fit the guide only: the imitator is not trained by the ELBO
                guide_params = list(self.guide.parameters())
                grads = torch.autograd.grad(negative_elbo, guide_params, allow_unused=True)
                for held, g in zip(self._guide_grads(), grads):
                    if g is not None:
                        held.add_(g)
            else:
                loss = loss + self.retrodiction_weight * negative_elbo
        return loss

    def _tally(self, name: str, value: float) -> None:
        total, count = self._sums.get(name, (0.0, 0))
        self._sums[name] = (total + value, count + 1)

    def _guide_grads(self) -> list[torch.Tensor]:
        if self._pending_guide is None:
            self._pending_guide = [torch.zeros_like(p) for p in self.guide.parameters()]
        return self._pending_guide

    def finish_step(self, average) -> None:
        """After the generator's step: average the discriminator's and the guide's gradients over the step's
        slices (and processes), step their optimizers, and update the reward baseline and the reported means."""
        names = sorted(self._sums)
        sums = torch.tensor([self._sums[n][0] for n in names], dtype=torch.float64)  # over this rank's slices
        if self.disc_optimizer is not None:
            params = list(self.discriminator.parameters())
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            average([p.grad for p in params] + [sums])
            self.disc_optimizer.step()
            self.disc_optimizer.zero_grad(set_to_none=True)
        else:
            average([sums])
        if self.guide_optimizer is not None and self._pending_guide is not None:
            average(self._pending_guide)
            for p, g in zip(self.guide.parameters(), self._pending_guide):
                p.grad = g
            self.guide_optimizer.step()
            self.guide_optimizer.zero_grad(set_to_none=True)
            self._pending_guide = None
        self.last = {
            n: float(m) for n, m in zip(names, sums)
        }  # summed over all slices, divided by their number
        self._sums = {}
        if self.samples == 1:
            reward = self.last["reward"]
            previous = reward if self.baseline is None else self.baseline
            self.baseline = self.baseline_decay * previous + (1 - self.baseline_decay) * reward
