"""Amortized guides q(latents | question, answer), built from a program's latent sites.

Continuous sites get a diagonal Normal, discrete sites a Categorical (or Bernoulli), all computed by one network
from an encoding of the (question, answer) pair. Nothing is hand-wired per model: the sites are found by tracing.
The question and the answer are encoded by bidirectional GRUs (``encoder="gru"``) or, at a fraction of the cost,
by max-pooled n-gram features (``encoder="ngram"``, what ``retro train`` uses unless told otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from retro.errors import RetroError
from retro.inference.sites import LatentSite, latent_sites
from retro.nets import NgramEncoder, StringEncoder
from retro.program import ANSWER_PLATE, StringProgram
from retro.text import StringBatch

__all__ = ["AmortizedGuide", "GUIDE_ENCODERS"]

GUIDE_ENCODERS = ("gru", "ngram")
"""How a guide encodes the question and the answer: bidirectional GRUs, or max-pooled n-gram features
(:class:`~retro.nets.NgramEncoder`)."""
SAVED_BEFORE_ENCODER = "gru"  # the encoder of every guide saved before the choice existed


def _string_encoder(kind: str, vocab_size: int, hidden_dim: int) -> nn.Module:
    """An encoder of ``hidden_dim`` outputs per string."""
    if kind == "gru":
        return StringEncoder(vocab_size, hidden_dim // 2)
    return NgramEncoder(vocab_size, 2 * (hidden_dim // 2))


class AmortizedGuide(PyroModule):
    """Mean-field amortized guide over every latent site of ``program``.

    Args:
        program: the imitator (or human) whose latents this guide proposes.
        hidden_dim: width of the encoders and of the shared hidden layer.
        sites: the latent sites (discovered by tracing ``program`` on ``example`` when not given).
        example: ``(questions, answers)`` to trace ``program`` on, for programs that cannot run on empty strings.
        encoder: one of :data:`GUIDE_ENCODERS`.

    Example:
        >>> from retro.models import LatentSeq2Seq
        >>> imitator = LatentSeq2Seq(latent_dim=2, hidden_dim=16)
        >>> guide = AmortizedGuide(imitator, hidden_dim=16)
        >>> sorted(guide.sites)
        ['z']
    """

    def __init__(
        self,
        program: StringProgram,
        hidden_dim: int = 64,
        sites: dict[str, LatentSite] | None = None,
        example: tuple[Sequence[str], Sequence[str]] | None = None,
        encoder: str = "gru",
    ):
        super().__init__()
        if encoder not in GUIDE_ENCODERS:
            raise RetroError(
                f"unknown guide encoder {encoder!r}: expected one of {', '.join(GUIDE_ENCODERS)}"
            )
        self.sites = sites if sites is not None else latent_sites(program, *(example or (("",), ("",))))
        self.hidden_dim, self.encoder = hidden_dim, encoder
        self.question_encoder = _string_encoder(encoder, program.question_codec.vocab_size, hidden_dim)
        self.answer_encoder = _string_encoder(encoder, program.codec.vocab_size, hidden_dim)
        self.hidden = nn.Sequential(nn.Linear(2 * hidden_dim, hidden_dim), nn.Tanh())
        self.heads = nn.ModuleDict(
            {name: nn.Linear(hidden_dim, self._head_size(site)) for name, site in self.sites.items()}
        )

    @staticmethod
    def _head_size(site: LatentSite) -> int:
        numel = math.prod(site.event_shape)
        return numel * {"normal": 2, "categorical": site.num_categories, "bernoulli": 1}[site.family]

    def _site_distribution(self, site: LatentSite, out: torch.Tensor) -> dist.Distribution:
        batch = out.shape[:-1]
        if site.family == "categorical":
            fn = dist.Categorical(logits=out.reshape(batch + site.event_shape + (site.num_categories,)))
        elif site.family == "bernoulli":
            fn = dist.Bernoulli(logits=out.reshape(batch + site.event_shape))
        else:
            loc, raw_scale = out.chunk(2, dim=-1)
            scale = nn.functional.softplus(raw_scale) + 1e-4
            fn = dist.Normal(loc.reshape(batch + site.event_shape), scale.reshape(batch + site.event_shape))
        return fn.to_event(len(site.event_shape)) if site.event_shape else fn

    def forward(self, questions: StringBatch, answers: StringBatch | None = None) -> dict[str, torch.Tensor]:
        if answers is None:
            raise ValueError("an amortized guide needs the answers it explains")
        if not self.sites:
            return {}
        h = self.hidden(torch.cat([self.question_encoder(questions), self.answer_encoder(answers)], -1))
        values = {}
        with pyro.plate(ANSWER_PLATE, len(questions), dim=-1):
            for name, site in self.sites.items():
                values[name] = pyro.sample(name, self._site_distribution(site, self.heads[name](h)))
        return values

    def config(self) -> dict[str, Any]:
        return {
            "hidden_dim": self.hidden_dim,
            "encoder": self.encoder,
            "sites": [site.config() for site in self.sites.values()],
        }

    @staticmethod
    def from_config(program: StringProgram, config: dict[str, Any]) -> AmortizedGuide:
        sites = {s["name"]: LatentSite.from_config(s) for s in config["sites"]}
        encoder = config.get("encoder", SAVED_BEFORE_ENCODER)
        return AmortizedGuide(program, hidden_dim=config["hidden_dim"], sites=sites, encoder=encoder)
