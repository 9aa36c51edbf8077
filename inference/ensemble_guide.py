"""The guide of an :class:`~retro.models.Ensemble`: each member's trained guide, run under that member's prefix.

It draws from the product of the members' posteriors q_1(z_1 | q, a) ... q_K(z_K | q, a), which is what
importance sampling, the ELBO and AIS need for the ensemble's latents ``m{k}/...``. Members without latents need
(and have) no guide.

That product is narrower than the ensemble's posterior: each member's guide was fitted to the member alone, while
in the token-level mixture a member's ``z`` sways only its share of each next-token probability, so the
ensemble's posterior lies closer to the prior. Its importance weights are then heavy-tailed, and estimates biased
low: on 60 CMUdict test answers, three members of width 192 gave -1.411 with 500 particles from the product
(k-hat above 0.7 for 42 answers) and still -1.273 with 8,000, against -1.160 from the defensive mixture of the
product and the prior with 500 (no k-hat above 0.7). So the estimators default to that mixture for an ensemble
(:attr:`EnsembleGuide.preferred_proposal`, read by :func:`~retro.inference.log_weights.preferred_proposal`).

Example:
    >>> from retro.models import Ensemble, LatentSeq2Seq, Seq2Seq
    >>> members = [LatentSeq2Seq(latent_dim=2, hidden_dim=8), Seq2Seq(hidden_dim=8)]
    >>> guide = EnsembleGuide([AmortizedGuide(members[0], hidden_dim=8), None])
    >>> sorted(guide(*[Ensemble(members).encode_questions(["hi"])] * 2))
    ['m0/z']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pyro.nn import PyroModule
from torch import nn

from retro.errors import RetroError
from retro.inference.guides import AmortizedGuide
from retro.models.ensemble import Ensemble, MemberScope, member_prefix
from retro.text import StringBatch

__all__ = ["EnsembleGuide", "GUIDE_KIND"]

GUIDE_KIND = "ensemble"  # the "kind" of its config (an AmortizedGuide's config has none)


class EnsembleGuide(PyroModule):
    """The members' guides side by side, member ``k``'s sites named ``m{k}/NAME``.

    Args:
        guides: one per member, in member order; ``None`` for a member without latents.
    """

    preferred_proposal = "mixture"
    """The proposal estimators use when none is named: half the particles from this guide, half from the prior
    (the module docstring says why)."""

    def __init__(self, guides: Sequence[PyroModule | None]):
        super().__init__()
        self.count = len(guides)
        self.guides = nn.ModuleDict({str(k): g for k, g in enumerate(guides) if g is not None})

    def forward(self, questions: StringBatch, answers: StringBatch | None = None) -> dict[str, torch.Tensor]:
        values = {}
        for key, guide in self.guides.items():
            with MemberScope(int(key)):
                drawn = guide(questions, answers)
            values.update({member_prefix(int(key)) + name: value for name, value in drawn.items()})
        return values

    def config(self) -> dict[str, Any]:
        return {
            "kind": GUIDE_KIND,
            "members": [
                self.guides[str(k)].config() if str(k) in self.guides else None for k in range(self.count)
            ],
        }

    @staticmethod
    def from_config(program: Ensemble, config: dict[str, Any]) -> EnsembleGuide:
        """Rebuild (untrained) from :meth:`config` for ``program``'s members."""
        members = config["members"]
        if not isinstance(program, Ensemble) or not isinstance(members, list):
            raise RetroError("an ensemble guide needs an ensemble imitator and a list of member guides")
        if len(members) != len(program.members):
            raise RetroError(
                f"the ensemble guide has {len(members)} member guides for {len(program.members)} members"
            )
        return EnsembleGuide(
            [
                None if member is None else AmortizedGuide.from_config(program.members[k], member)
                for k, member in enumerate(members)
            ]
        )
