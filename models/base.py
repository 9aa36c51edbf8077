"""The Imitator contract, for the built-in imitators and for your own.

An imitator is a Pyro program over strings. Write one by subclassing :class:`Imitator` and defining
``model(questions, answers=None)``:

* ``questions`` and ``answers`` are :class:`retro.StringBatch` (padded token tensors); ``answers=None`` samples.
* Put everything per answer inside ``with self.answers_plate(questions):`` (a plate named ``"answers"`` at
  ``dim=-1``). Latent sites (any names) are local to that plate: continuous ones get a Normal guide, discrete ones
  (``Categorical``/``Bernoulli``) a Categorical guide, built automatically by :mod:`retro.inference.guides`.
* End with ``self.observe(distribution, answers)``: the one site named ``"answer"``, whose distribution is a
  :class:`retro.distributions.StringDistribution` (or any distribution over EOS-padded token strings with a
  batched ``log_prob``).
* Broadcast: estimators run your model inside a particle plate at ``dim=-2`` and enumerate discrete latents in the
  dims left of it, so a latent's value can have shape ``[..., B, event]``. Combine per-question tensors
  ``[B, H]`` with latents by broadcasting, not by assuming ``[B, ...]`` shapes.

Anything that follows this works with every estimator, trainer and sampler. Example (a custom imitator whose
answer length depends on a latent "verbosity"):

    >>> import pyro, pyro.distributions as dist, torch
    >>> from retro.models import Imitator
    >>> from retro.nets import GRUDecoder, StringEncoder
    >>> from retro.distributions import StringDistribution
    >>> class Verbose(Imitator):
    ...     name = "verbose-example"
    ...     def __init__(self, codec=None, max_length=16):
    ...         super().__init__(codec, max_length)
    ...         self.encoder = StringEncoder(self.question_codec.vocab_size, 16)
    ...         self.decoder = GRUDecoder(self.codec.vocab_size, 32 + 1, 16)
    ...     def model(self, questions, answers=None):
    ...         code = self.encoder(questions)                                  # [B, 32]
    ...         with self.answers_plate(questions):
    ...             v = pyro.sample("verbosity", dist.Normal(0.0, 1.0))       # [..., B]
    ...             shape = torch.broadcast_shapes(v.shape, code.shape[:-1])
    ...             context = torch.cat([code.expand(shape + (32,)), v.expand(shape)[..., None]], -1)
    ...             answer = StringDistribution(self.decoder, context, self.max_length, self.codec.eos)
    ...             return self.observe(answer, answers)
    >>> len(Verbose().sample(["hi"], num_samples=2)[0])
    2
"""

from __future__ import annotations

from typing import Any

import torch

from retro.program import ANSWER_PLATE, ANSWER_SITE, PARTICLE_DIM, StringProgram
from retro.text import Codec

__all__ = ["Imitator", "ANSWER_SITE", "ANSWER_PLATE", "PARTICLE_DIM"]


class Imitator(StringProgram):
    """Base class of trainable imitators. Subclasses set ``name`` and pass their hyper-parameters to
    :meth:`remember_config` so a checkpoint can rebuild them."""

    name: str = ""

    def __init__(self, codec: Codec | None = None, max_length: int = 32, question_codec: Codec | None = None):
        super().__init__(codec, max_length, question_codec)
        self._hyperparameters: dict[str, Any] = {}

    def remember_config(self, **hyperparameters: Any) -> None:
        self._hyperparameters = dict(hyperparameters)

    def config(self) -> dict[str, Any]:
        return {"imitator": self.name, **super().config(), **self._hyperparameters}

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint holds: everything here; an imitator on a frozen base, only what it trains."""
        return self.state_dict()

    def load_trained_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`trained_state` gave."""
        self.load_state_dict(tensors)
