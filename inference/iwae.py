"""The importance-weighted bound (IWAE) as a training objective, with low-variance gradients for the guide.

For an answer x with K guide particles z_k ~ q(z | question, x) and weights w_k = p(x, z_k | question) / q(z_k),

    IWAE_K = E[log (1/K) sum_k w_k]  <=  log p(x | question),

which tightens monotonically to log p as K grows (Burda, Grosse & Salakhutdinov 2016, "Importance weighted
autoencoders"). It is the expectation of exactly what :func:`retro.inference.importance` reports with the guide
proposal and K particles, so training on it trains the imitator on the estimator it is scored by. The particles
are one vectorized plate at ``dim=-2`` (:func:`retro.inference.log_weights.particle_traces`).

**Gradients of continuous (reparameterized) guide latents.** The model parameters theta get the usual estimator
sum_k w~_k grad_theta log w_k (w~ the normalized weights). For the guide parameters phi the plain reparameterized
estimator has a signal-to-noise ratio that *falls* like 1/sqrt(K) (Rainforth et al. 2018, "Tighter variational
bounds are not necessarily better"), so a tighter bound trains the guide worse. The doubly-reparameterized
estimator (DReG; Tucker, Lawson, Gu & Maddison 2019, "Doubly reparameterized gradient estimators for Monte Carlo
objectives") removes the score term of log q by a second reparameterization:

    grad_phi IWAE_K = E[sum_k w~_k^2 * d log w_k / d z_k * d z_k / d phi],

where log q inside log w_k is evaluated with phi stopped. It is unbiased for the same gradient and its SNR grows
with K. Here it is one forward and one backward pass: the surrogate -sum_k stopgrad(w~_k) log w_k (log q with
detached parameters) gives theta its gradient, and a gradient hook on a copy of each continuous guide value z_k
multiplies what flows back into z_k by w~_k, turning w~_k into w~_k^2 on the guide's path only. Pyro has no DReG
(pyro-ppl issue #3104). ``gradient="standard"`` keeps the plain reparameterized estimator, for comparison.

**Discrete guide latents.** They cannot be reparameterized:

* When their joint support is small (at most :data:`MAX_ENUMERATED` values, scalar sites) they are summed out
  exactly, per continuous particle: w_k = sum_d p(x, d, z_k) / q(z_k) (Rao-Blackwellized; a tighter bound than
  sampling d, and *exactly* log p(x) when every latent is discrete). That bound does not depend on q(d) at all,
  so the discrete guide heads are fitted separately, to the posterior they must propose from when scoring: the
  enumerated inclusive KL, -sum_d stopgrad(p^(d | x)) log q(d), with p^(d | x) proportional to
  sum_k p(x, d, z_k) / q(z_k) (exact without continuous latents) -- the wake-phase update of reweighted wake-sleep
  (Bornschein & Bengio 2015; Le et al. 2019, "Revisiting reweighted wake-sleep", which finds it the better
  objective for discrete guides). It changes the gradient, never the loss value.
* Otherwise (or with ``discrete="vimco"``) d is sampled per particle and its guide gets the score-function term
  of VIMCO (Mnih & Rezende 2016, "Variational inference for Monte Carlo objectives"): sum_k (L - L_-k) grad log
  q(d_k), where L_-k is the bound with w_k replaced by the geometric mean of the other particles' weights (a
  per-particle leave-one-out control variate, so the gradient stays unbiased). Pyro's ``RenyiELBO(alpha=0)``
  leaves a discrete guide's parameters with exactly zero gradient; this does not.

Example:
    >>> import torch
    >>> from retro.inference import AmortizedGuide
    >>> from retro.models import LatentSeq2Seq
    >>> from retro.text import AlphabetCodec
    >>> imitator = LatentSeq2Seq(AlphabetCodec("ab"), max_length=3, hidden_dim=16, latent_dim=2)
    >>> objective = IWAEObjective(imitator, AmortizedGuide(imitator, hidden_dim=16), num_particles=8)
    >>> loss = objective(imitator.encode_questions(["ab", "b"]), imitator.encode_answers(["a", "bb"]))
    >>> loss.backward()
    >>> loss.item() == -objective.last["iwae"]
    True
"""

from __future__ import annotations

import math
from typing import Literal

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from retro.errors import RetroError
from retro.inference.guides import AmortizedGuide
from retro.inference.log_weights import enumerated_values, particle_traces, site_sum
from retro.inference.sites import joint_values, sample_sites
from retro.program import ANSWER_SITE, PARTICLE_DIM, StringProgram
from retro.text import StringBatch

__all__ = ["IWAEObjective", "MAX_ENUMERATED", "GRADIENTS", "DISCRETE_MODES"]

MAX_ENUMERATED = 1024  # joint values of the discrete guide sites summed out exactly (more: VIMCO)
GRADIENTS = ("dreg", "standard")
DISCRETE_MODES = ("auto", "enumerate", "vimco")


def _detached(fn: dist.Distribution) -> dist.Distribution:
    """The same guide distribution with its parameters cut from the graph (DReG evaluates log q this way)."""
    if isinstance(fn, dist.Independent):
        return dist.Independent(_detached(fn.base_dist), fn.reinterpreted_batch_ndims)
    if isinstance(fn, dist.Normal):
        return dist.Normal(fn.loc.detach(), fn.scale.detach())
    raise RetroError(
        f"gradient='dreg' needs Normal continuous guide sites, got {type(fn).__name__} (use gradient='standard')"
    )


def _leave_one_out(log_w: torch.Tensor) -> torch.Tensor:
    """VIMCO's baselines ``L_-k`` ``[K, B]``: log (1/K) (sum_{j != k} w_j + geometric mean of those w_j)."""
    count = log_w.shape[0]
    eye = torch.eye(count, dtype=torch.bool, device=log_w.device)[:, :, None]  # [k, j, 1]
    others = log_w.unsqueeze(0).expand(count, count, log_w.shape[1])  # [k, j, B]: row k sees every w_j
    geometric = torch.where(eye, torch.zeros_like(others), others).sum(1) / (count - 1)  # [k, B]
    replaced = torch.where(eye, geometric.unsqueeze(1), others)
    return torch.logsumexp(replaced, 1) - math.log(count)


class IWAEObjective(nn.Module):
    """Minus the IWAE bound per answer (mean over the batch), a training objective for
    :func:`~retro.inference.train.train` (``objective=``); ``last = {"iwae": bound}`` after each call.

    Args:
        imitator: any program following the Imitator contract.
        guide: its :class:`~retro.inference.guides.AmortizedGuide` (``None`` only for a program without latents:
            the objective is then the exact log-likelihood).
        num_particles: K guide particles per answer and step (independent of the particles used for scoring).
        gradient: ``"dreg"`` (doubly reparameterized guide gradient) or ``"standard"`` (plain reparameterized).
        discrete: ``"auto"`` (sum discrete guide sites out when their joint support has at most
            :data:`MAX_ENUMERATED` values, else VIMCO), ``"enumerate"`` or ``"vimco"`` (force one).
    """

    retrodiction = True  # judged by held-out log p in training (best kept, early stopping)

    def __init__(
        self,
        imitator: StringProgram,
        guide: AmortizedGuide | None,
        num_particles: int = 8,
        gradient: Literal["dreg", "standard"] = "dreg",
        discrete: Literal["auto", "enumerate", "vimco"] = "auto",
    ):
        super().__init__()
        if gradient not in GRADIENTS:
            raise RetroError(f"unknown gradient {gradient!r}; expected one of {', '.join(GRADIENTS)}")
        if discrete not in DISCRETE_MODES:
            raise RetroError(
                f"unknown discrete mode {discrete!r}; expected one of {', '.join(DISCRETE_MODES)}"
            )
        if int(num_particles) != num_particles or num_particles < 1:
            raise RetroError(f"num_particles must be a positive integer, got {num_particles}")
        self.imitator, self.guide = imitator, guide
        self.num_particles, self.gradient = int(num_particles), gradient
        sites = guide.sites if guide is not None else {}
        self.discrete_sites = {n: s for n, s in sites.items() if s.discrete}
        self.continuous_sites = {n: s for n, s in sites.items() if not s.discrete}
        scalar = all(not s.event_shape for s in self.discrete_sites.values())
        support = joint_values(self.discrete_sites.values())
        small = scalar and support <= MAX_ENUMERATED
        if discrete == "enumerate" and self.discrete_sites and not small:
            raise RetroError(
                f"cannot enumerate the discrete guide sites ({support} joint values, at most {MAX_ENUMERATED} "
                "scalar-site values): use discrete='vimco'"
            )
        self.enumerate = bool(self.discrete_sites) and discrete != "vimco" and small
        if self.discrete_sites and not self.enumerate and self.num_particles < 2:
            raise RetroError("VIMCO needs num_particles >= 2 (its baseline leaves one particle out)")
        self.last: dict[str, float] = {}

    def forward(self, questions: StringBatch, answers: StringBatch) -> torch.Tensor:
        if self.guide is None or not self.guide.sites:
            bound, surrogate = self._exact(questions, answers)
        elif self.enumerate:
            bound, surrogate = self._enumerated(questions, answers)
        else:
            bound, surrogate = self._sampled(questions, answers)
        self.last = {"iwae": bound.mean().item()}
        surrogate = surrogate.mean()
        # the value is minus the bound; the gradient is the surrogate's (DReG / VIMCO / wake terms)
        return -bound.mean().detach() + (surrogate - surrogate.detach())

    # -- the three cases ------------------------------------------------------------------------------------------
    def _exact(self, questions, answers):
        trace = poutine.trace(self.imitator.model).get_trace(questions, answers)
        self._check_covered(trace)
        log_p = site_sum(trace, torch.Size([len(answers)]))
        return log_p, -log_p

    def _sampled(self, questions, answers):
        shape = torch.Size([self.num_particles, len(answers)])
        route: dict[str, torch.Tensor] = {}
        guide_trace, model_trace = particle_traces(
            self.imitator, self.guide, questions, answers, self.num_particles, self._rerouter(route)
        )
        self._check_covered(model_trace)
        log_w = site_sum(model_trace, shape) - site_sum(guide_trace, shape)
        bound = torch.logsumexp(log_w, 0) - math.log(self.num_particles)
        weights = torch.softmax(log_w.detach(), 0)
        route["scale"] = weights  # DReG: w~ on the model's path, w~^2 on the guide's reparameterized path
        surrogate = -(weights * log_w).sum(0)
        if self.discrete_sites:  # VIMCO: score-function term with a leave-one-out baseline per particle
            log_q_discrete = site_sum(guide_trace, shape, self.discrete_sites)
            signal = (bound.unsqueeze(0) - _leave_one_out(log_w)).detach()
            surrogate = surrogate - (signal * log_q_discrete).sum(0)
        return bound, surrogate

    def _enumerated(self, questions, answers):
        count = self.num_particles if self.continuous_sites else 1
        batch = len(answers)
        values = enumerated_values(self.discrete_sites, questions.tokens.device)  # {name: [S, 1]}
        support = next(iter(values.values())).shape[0]
        route: dict[str, torch.Tensor] = {}
        with pyro.plate("particles", count, dim=PARTICLE_DIM):
            guide_trace = poutine.trace(self.guide).get_trace(questions, answers)
        self._rerouter(route)(guide_trace)
        # rows s * count + k: discrete value s with continuous particle k
        data = {n: v.repeat_interleave(count, 0) for n, v in values.items()}
        for name in self.continuous_sites:
            value = guide_trace.nodes[name]["value"]
            data[name] = value.repeat((support,) + (1,) * (value.dim() - 1))
        with pyro.plate("particles", support * count, dim=PARTICLE_DIM):
            model_trace = poutine.trace(poutine.condition(self.imitator.model, data=data)).get_trace(
                questions, answers
            )
        self._check_covered(model_trace)
        log_joint = site_sum(model_trace, torch.Size([support * count, batch])).reshape(support, count, batch)
        log_w_joint = log_joint
        if self.continuous_sites:
            log_w_joint = log_joint - site_sum(guide_trace, torch.Size([count, batch]), self.continuous_sites)
        log_w = torch.logsumexp(log_w_joint, 0)  # [K, B]: the discrete values summed out exactly
        bound = torch.logsumexp(log_w, 0) - math.log(count)
        weights = torch.softmax(log_w.detach(), 0)
        route["scale"] = weights
        surrogate = -(weights * log_w).sum(0)
        # the discrete guide heads: inclusive KL to the (estimated) posterior of the discrete values
        posterior = torch.softmax(torch.logsumexp(log_w_joint.detach(), 1), 0)  # [S, B]
        log_q_discrete = sum(
            guide_trace.nodes[n]["fn"].log_prob(v.reshape(support, 1, 1))[:, 0, :] for n, v in values.items()
        )
        return bound, surrogate - (posterior * log_q_discrete).sum(0)

    # -- helpers -----------------------------------------------------------------------------------------------------
    def _rerouter(self, route: dict[str, torch.Tensor]):
        """For DReG: an ``edit`` for :func:`~retro.inference.log_weights.particle_traces` that gives each
        continuous guide site a detached density and a value whose incoming gradient is multiplied by
        ``route["scale"]`` (the normalized weights ``[K, B]``, known only after the forward pass, read when
        backward runs)."""

        def edit(guide_trace) -> None:
            if self.gradient != "dreg":
                return
            for name in self.continuous_sites:
                site = guide_trace.nodes[name]
                site["fn"] = _detached(site["fn"])
                if not site["value"].requires_grad:
                    continue
                value = site["value"].clone()
                extra = value.dim() - 2  # event dims of [K, B, *event]
                value.register_hook(
                    lambda grad, extra=extra: grad * route["scale"].reshape(grad.shape[:2] + (1,) * extra)
                )
                site["value"] = value

        return edit

    def _check_covered(self, model_trace) -> None:
        latent = {n for n, s in sample_sites(model_trace) if not s["is_observed"] and n != ANSWER_SITE}
        known = set(self.guide.sites) if self.guide is not None else set()
        if latent - known:
            raise RetroError(
                f"the guide does not propose the latent sites {sorted(latent - known)} of "
                f"{type(self.imitator).__name__}"
            )
