"""Discover a program's latent sites (names, kinds, shapes) by tracing it once."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from retro.errors import RetroError
from retro.program import ANSWER_SITE, StringProgram

__all__ = [
    "LatentSite",
    "latent_sites",
    "joint_values",
    "base_distribution",
    "describe_site",
    "sample_sites",
    "trace_log_prob",
]


@dataclass(frozen=True)
class LatentSite:
    """A latent sample site local to the answers plate.

    Attributes:
        name: site name.
        family: ``"normal"`` (real-valued), ``"categorical"`` or ``"bernoulli"``.
        event_shape: the per-answer event shape (``()`` for scalars).
        num_categories: support size of a categorical site (0 otherwise).
    """

    name: str
    family: Literal["normal", "categorical", "bernoulli"]
    event_shape: tuple[int, ...]
    num_categories: int = 0

    @property
    def discrete(self) -> bool:
        return self.family != "normal"

    @property
    def support_size(self) -> int:
        """Number of values of a discrete site (per event element)."""
        return {"categorical": self.num_categories, "bernoulli": 2}.get(self.family, 0)

    @property
    def num_values(self) -> int:
        """Joint values of the whole site (``support_size`` per element, over every element of the event)."""
        return self.support_size ** math.prod(self.event_shape)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "event_shape": list(self.event_shape),
            "num_categories": self.num_categories,
        }

    @staticmethod
    def from_config(config: dict[str, Any]) -> LatentSite:
        return LatentSite(
            config["name"], config["family"], tuple(config["event_shape"]), config["num_categories"]
        )


def joint_values(sites) -> int:
    """How many joint values the discrete ones among ``sites`` (``LatentSite`` objects) take together (1: none)."""
    return math.prod(site.num_values for site in sites if site.discrete)


def sample_sites(trace):
    """``(name, site)`` of the real sample sites of a trace (plates' subsample sites left out)."""
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site):
            yield name, site


def trace_log_prob(trace, names=None) -> torch.Tensor | None:
    """Sum of ``log_prob`` over the trace's sample sites (or those in ``names``), broadcast together; ``None``
    when no site counts."""
    total = None
    for name, site in sample_sites(trace):
        if names is None or name in names:
            log_prob = site["fn"].log_prob(site["value"])
            total = log_prob if total is None else total + log_prob
    return total


def base_distribution(fn: dist.Distribution) -> dist.Distribution:
    """Strip ``Independent``/``expand``/masking wrappers."""
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def describe_site(name: str, fn: dist.Distribution) -> LatentSite:
    """The :class:`LatentSite` of a sample site with distribution ``fn`` (a :class:`RetroError` when unsupported)."""
    base = base_distribution(fn)
    if fn.support.is_discrete:
        if isinstance(base, dist.Categorical):
            return LatentSite(name, "categorical", tuple(fn.event_shape), base.probs.shape[-1])
        if isinstance(base, dist.Bernoulli):
            return LatentSite(name, "bernoulli", tuple(fn.event_shape))
        raise RetroError(
            f"latent site {name!r}: discrete {type(base).__name__} is not supported "
            "(use Categorical or Bernoulli)"
        )
    if fn.support is not dist.constraints.real and not isinstance(fn.support, dist.constraints.independent):
        raise RetroError(
            f"latent site {name!r}: only real-valued continuous latents are supported, "
            f"got support {fn.support}"
        )
    return LatentSite(name, "normal", tuple(fn.event_shape))


def latent_sites(
    program: StringProgram, questions: Sequence[str] = ("",), answers: Sequence[str] = ("",)
) -> dict[str, LatentSite]:
    """The latent sites of ``program`` on an example batch (default: one empty question and answer)."""
    with torch.no_grad():
        trace = poutine.trace(program.model).get_trace(
            program.encode_questions(questions), program.encode_answers(answers)
        )
    sites = {}
    for name, site in sample_sites(trace):
        if site["is_observed"] or name == ANSWER_SITE:
            continue
        sites[name] = describe_site(name, site["fn"])
    if ANSWER_SITE not in trace.nodes:
        raise RetroError(f"{type(program).__name__}.model has no sample site named {ANSWER_SITE!r}")
    return sites
