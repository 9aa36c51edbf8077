"""Posterior collapse: the tools against it (KL annealing, free bits) and the diagnostics that show it.

A latent-variable imitator trained by the ELBO can learn to ignore its latent (the decoder explains everything,
the guide matches the prior, KL -> 0): posterior collapse. Following the text-VAE literature:

* :class:`CollapseAwareELBO`, a training objective: ``-E_q[log p(answer | z)] + beta * KL_term``, with the KL
  computed in closed form per latent dimension (Normal guide vs Normal prior; Categorical and Bernoulli per site),

  - **KL annealing**: ``beta`` rises from 0 to 1 over ``warmup`` steps (``"linear"``, Bowman et al. 2016), or in
    every cycle of ``cycle`` steps, over its first ``ratio`` part (``"cyclical"``, Fu et al. 2019);
  - **free bits** per dimension (Kingma et al. 2016, in the per-dimension form of Li et al. 2019): each
    dimension's KL, averaged over the minibatch, counts as ``max(free_bits, KL_d)``, so the optimizer gains
    nothing by pushing a dimension's KL below ``free_bits`` nats.

  With ``beta = 1`` and no free bits its value is minus the ELBO (analytic KL instead of a Monte Carlo one).
* :func:`collapse_diagnostics`, reported at every evaluation of training (He et al. 2019): the mean KL, the mutual
  information ``I(z; answer)`` under ``q`` (Hoffman & Johnson 2016:
  ``E_x E_q(z|x)[log q(z|x) - log q(z)]`` with the aggregate posterior ``q(z)`` approximated by the mixture of the
  batch's posteriors), and the number of **active units**: dimensions whose posterior mean varies across answers,
  ``Cov_x(E_q[z_d | x]) > 0.01`` (Burda et al. 2016). Per latent site (``usage``): for a discrete site, its
  mutual information with the answer under ``q`` computed exactly from the guide's probabilities
  (``H(mean_x q(c | x)) - mean_x H(q(c | x))``) and its mean KL from the prior; for a continuous one, its active
  units. A site is **unused** (``unused``) when a discrete one carries less than :data:`UNUSED_NATS` of
  information about the answer (its posterior is its prior, whatever the answer) or a continuous one has no active
  unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn
from torch.distributions import kl_divergence

from retro.errors import RetroError
from retro.inference.guides import AmortizedGuide
from retro.program import ANSWER_SITE, StringProgram
from retro.text import StringBatch

__all__ = [
    "CollapseAwareELBO",
    "kl_weight",
    "collapse_diagnostics",
    "CollapseDiagnostics",
    "ACTIVE_THRESHOLD",
    "UNUSED_NATS",
]

ACTIVE_THRESHOLD = 0.01  # Burda et al. 2016: a unit is active when Cov_x(E_q[z_d | x]) exceeds this
UNUSED_NATS = 0.01  # a discrete latent telling less than this about the answer is unused

Schedule = Literal["none", "linear", "cyclical"]


def kl_weight(
    step: int, schedule: Schedule = "none", warmup: int = 1000, cycle: int = 1000, ratio: float = 0.5
) -> float:
    """``beta`` at optimizer step ``step`` (1-based): 1 without annealing; linear warm-up; cyclical ramps."""
    if schedule == "none":
        return 1.0
    if schedule == "linear":
        return min(1.0, step / warmup)
    if schedule == "cyclical":
        position = ((step - 1) % cycle) / cycle
        return min(1.0, position / ratio)
    raise RetroError(f"unknown KL schedule {schedule!r}; expected none, linear or cyclical")


def _base(fn: dist.Distribution) -> dist.Distribution:
    """The per-dimension distribution under ``Independent`` wrappers (and Pyro's expanded ones)."""
    while isinstance(fn, (dist.Independent, torch.distributions.Independent)):
        fn = fn.base_dist
    return fn


def _traces(program: StringProgram, guide: AmortizedGuide, questions: StringBatch, answers: StringBatch):
    guide_trace = poutine.trace(guide).get_trace(questions, answers)
    model_trace = poutine.trace(poutine.replay(program.model, trace=guide_trace)).get_trace(
        questions, answers
    )
    return guide_trace, model_trace


def _kl_per_dimension(guide_trace, model_trace, sites: Sequence[str], batch: int) -> torch.Tensor:
    """``[B, D]``: closed-form KL(q || p) per latent dimension (a discrete site counts as one dimension)."""
    columns = []
    for name in sites:
        q, p = _base(guide_trace.nodes[name]["fn"]), _base(model_trace.nodes[name]["fn"])
        kl = kl_divergence(q, p)
        columns.append(kl.reshape(batch, -1) if kl.dim() > 1 else kl.reshape(batch, 1))
    return torch.cat(columns, dim=-1)


class CollapseAwareELBO(nn.Module):
    """Minus the ELBO per answer with KL annealing and per-dimension free bits (see the module docstring).

    Args:
        imitator, guide: the program and its amortized guide.
        schedule: ``"none"``, ``"linear"`` or ``"cyclical"`` KL annealing.
        warmup: linear schedule: steps until ``beta = 1``.
        cycle, ratio: cyclical schedule: cycle length in steps, and the part of each cycle spent ramping.
        free_bits: nats per dimension below which a dimension's (minibatch-mean) KL is not penalized. In a
            data-parallel run the floor applies to each slice's mean (each process's share of the minibatch).

    The step counter is a buffer, so it is saved with training states and a resumed run keeps its schedule.
    """

    retrodiction = True  # judged by held-out log p in training (best kept, early stopping)

    def __init__(
        self,
        imitator: StringProgram,
        guide: AmortizedGuide,
        schedule: Schedule = "linear",
        warmup: int = 1000,
        cycle: int = 1000,
        ratio: float = 0.5,
        free_bits: float = 0.0,
    ):
        super().__init__()
        if guide is None or not guide.sites:
            raise RetroError("KL annealing and free bits need an imitator with latents and its guide")
        discrete = [name for name, site in guide.sites.items() if site.discrete]
        if discrete:  # a sampled discrete site would need a score-function term this objective does not have
            raise RetroError(
                f"KL annealing and free bits are for continuous latents; {', '.join(discrete)} is discrete "
                "(train it with the default objective or --objective iwae, which sum it out)"
            )
        if not (warmup >= 1 and cycle >= 1 and 0 < ratio <= 1 and 0 <= free_bits < math.inf):  # NaN fails too
            raise RetroError(
                f"bad collapse settings: warmup {warmup}, cycle {cycle}, ratio {ratio}, free_bits {free_bits} "
                "(warmup and cycle >= 1, 0 < ratio <= 1, free bits finite and >= 0)"
            )
        kl_weight(1, schedule, warmup, cycle, ratio)  # validates the schedule name
        self.imitator, self.guide = imitator, guide
        self.schedule, self.warmup, self.cycle, self.ratio, self.free_bits = (
            schedule,
            warmup,
            cycle,
            ratio,
            free_bits,
        )
        self.sites = list(guide.sites)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.last: dict[str, float] = {}

    def forward(self, questions: StringBatch, answers: StringBatch) -> torch.Tensor:
        beta = kl_weight(int(self.step) + 1, self.schedule, self.warmup, self.cycle, self.ratio)
        guide_trace, model_trace = _traces(self.imitator, self.guide, questions, answers)
        site = model_trace.nodes[ANSWER_SITE]
        reconstruction = site["fn"].log_prob(site["value"]).reshape(len(answers))
        kl = _kl_per_dimension(guide_trace, model_trace, self.sites, len(answers))  # [B, D]
        per_dimension = kl.mean(0)
        penalized = per_dimension.clamp(min=self.free_bits) if self.free_bits > 0 else per_dimension
        self.last = {"kl_weight": beta, "train_kl": float(per_dimension.detach().sum())}
        return -reconstruction.mean() + beta * penalized.sum()

    def finish_step(self, average) -> None:
        """Count the optimizer step (the schedule follows steps, not calls: a step may have several slices)."""
        self.step += 1


@dataclass(frozen=True)
class CollapseDiagnostics:
    kl: float  # mean KL(q(z | answer) || p(z)) per answer, nats
    mutual_information: float  # I(z; answer) under q, nats
    active_units: int | None  # continuous dimensions with Cov_x(E_q[z_d]) > ACTIVE_THRESHOLD
    dimensions: int
    usage: dict[str, dict[str, float]] = field(default_factory=dict)  # per site, see the module docstring
    unused: tuple[str, ...] = ()  # the sites that are unused

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def collapse_diagnostics(
    program: StringProgram, guide: AmortizedGuide, questions: Sequence[str], answers: Sequence[str]
) -> CollapseDiagnostics:
    """KL, mutual information and active units of ``guide`` on these answers (see the module docstring)."""
    if guide is None or not guide.sites or len(answers) < 2:
        raise RetroError("collapse diagnostics need a guide with latents and at least 2 answers")
    q_batch, a_batch = program.encode_questions(questions), program.encode_answers(answers)
    guide_trace, model_trace = _traces(program, guide, q_batch, a_batch)
    n = len(answers)
    kl = _kl_per_dimension(guide_trace, model_trace, list(guide.sites), n)
    # MI: one z_i per answer; log q(z_i) ~ log mean_j q(z_i | x_j) over the batch's posteriors.
    device = program.device
    own, cross = (
        torch.zeros(n, device=device),
        torch.zeros(n, n, device=device),
    )  # cross[i, j] = log q(z_i | x_j)
    means = []
    for name in guide.sites:
        fn, z = guide_trace.nodes[name]["fn"], guide_trace.nodes[name]["value"]
        own += fn.log_prob(z).reshape(n)
        cross += fn.log_prob(z.unsqueeze(1)).reshape(n, n)  # z_i against every answer's posterior
        base = _base(fn)
        if isinstance(base, torch.distributions.Normal):
            means.append(base.loc.reshape(n, -1))
    log_aggregate = cross.logsumexp(1) - math.log(n)
    mutual_information = float((own - log_aggregate).mean())
    active = None
    if means:
        loc = torch.cat(means, dim=-1)
        active = int((loc.var(0) > ACTIVE_THRESHOLD).sum())
    usage = {name: _site_usage(guide_trace, model_trace, name, n) for name in guide.sites}
    unused = tuple(
        name
        for name, u in usage.items()
        if u.get("mutual_information", math.inf) < UNUSED_NATS or u.get("active_units", 1) == 0
    )
    return CollapseDiagnostics(
        float(kl.sum(1).mean()), mutual_information, active, kl.shape[1], usage, unused
    )


def _site_usage(guide_trace, model_trace, name: str, n: int) -> dict[str, float]:
    """How much one latent site is used (see the module docstring)."""
    q, prior = _base(guide_trace.nodes[name]["fn"]), _base(model_trace.nodes[name]["fn"])
    if isinstance(q, torch.distributions.Normal):
        return {"active_units": int((q.loc.reshape(n, -1).var(0) > ACTIVE_THRESHOLD).sum())}
    if isinstance(q, torch.distributions.Bernoulli):  # as a Categorical over {0, 1}
        q = torch.distributions.Categorical(probs=torch.stack([1 - q.probs, q.probs], -1))
        prior = torch.distributions.Categorical(probs=torch.stack([1 - prior.probs, prior.probs], -1))
    probs = q.probs.reshape(n, -1)
    aggregate = torch.distributions.Categorical(probs=probs.mean(0))
    information = float(aggregate.entropy() - q.entropy().reshape(n).mean())
    return {
        "mutual_information": information,
        "kl_to_prior": float(kl_divergence(q, prior).reshape(n).mean()),
    }
