"""Annealed importance sampling (AIS) estimate of log p(answer | question), per answer, with HMC transitions.

For each answer, ``num_particles`` chains start from the proposal ``q(z)`` (the prior or the guide) and move through
the geometric path of distributions

    pi_t(z) ∝ q(z)^(1 - beta_t) p(z, answer | question)^beta_t,    0 = beta_0 < beta_1 < ... < beta_T = 1,

over the program's continuous latents (Neal 2001). Chain ``c`` collects the log weight

    log w_c = sum_{t=1..T} (beta_t - beta_{t-1}) (log p(answer, z_{t-1}) - log q(z_{t-1})),

where ``z_0 ~ q`` and ``z_t`` is drawn from an HMC transition (``leapfrog_steps`` leapfrog steps, identity mass,
Metropolis correction) that leaves ``pi_t`` invariant. ``E[w_c] = p(answer | question)``, so the estimate is the log
of the mean weight over chains, with the same delta-method standard error, ESS and Pareto k-hat as importance
sampling (:func:`~retro.inference.weight_records.records_from_log_weights`). With ``num_steps=1`` it *is*
importance sampling with the same proposal.

Schedule: ``beta_t`` follows the sigmoidal schedule of Grosse, Maddison & Salakhutdinov (2013),
``beta_t ∝ sigmoid(delta (2 t / T - 1))`` rescaled to run exactly from 0 to 1 (:func:`sigmoid_schedule`). Its
steepness ``delta`` trades smaller steps near both ends against larger ones in the middle; ``delta = 1`` (close to
linear spacing) gave the smallest errors on the typist human (``delta = 4``, the paper's choice, about 10% larger at
the same cost; ``delta = 8`` about 50% larger).

Step sizes are per answer (shared by its chains) and come from pilot chains: ``pilot_chains(C)`` chains (an
eighth of the ``C`` reported ones, at least 4), drawn from their own keyed streams (chain ids from
``PILOT_CHAIN_IDS``, never a reported chain's), anneal in the same vectorized pass, and after every transition the
step size moves by ``eps <- eps * exp(gain * (mean acceptance over the pilot chains - target_accept))``. The pilot
chains' weights are discarded; the reported chains follow the step sizes the pilot chains chose, which never
depend on them. Each reported transition then leaves
``pi_t`` exactly invariant and the chains are independent given the pilot, so ``E[w_c] = p`` and the delta-method
error bar rests on independent draws. Adapting from the reported chains' own acceptance (as before) made every
transition depend on all chains' past; measured on the calibration's typist answers at 64 chains (200 answers, 7
seeds), the estimates then sat 0.12 standard errors high on average (4.4 of that mean's standard errors); with
the pilot, +0.01 (4 seeds). Because the step sizes no longer depend on the reported chains, an answer's weights
also no longer depend on how its chains are cut into chunks (``max_rows``). The Metropolis
correction at every step is what keeps each transition pi_t-invariant; the weights never use the transitions'
densities.

Defaults (48 steps, 64 chains, one leapfrog step: a Metropolis-adjusted Langevin transition) were chosen on the
typist human's 200 answers with the prior proposal: mean |AIS - exact| about 0.015 nats. At equal cost (steps x
chains x leapfrog steps), one leapfrog step beat two, four or eight there.

Discrete latents are summed out exactly inside every density (parallel enumeration in the dims left of the chain
plate), so HMC only moves the continuous ones; the proposal density is then the marginal of the continuous latents
under the prior (or guide). Chains are a vectorized plate at ``dim=-2`` like the particles of
:mod:`retro.inference.log_weights`; answers of one length at a time are processed in chunks of at most
``max_rows`` chain x answer rows (times the number of enumerated discrete values), so memory is bounded by a
setting, not by the number of chains or answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import pyro
import torch
from pyro import poutine
from pyro.infer import config_enumerate
from tqdm import tqdm

from retro.errors import RetroError
from retro.inference.exact import exact
from retro.inference.log_weights import DEFAULT_MAX_ROWS, length_buckets, preferred_proposal
from retro.inference.registry import Registration, draw_seed, estimator, register
from retro.inference.results import Estimate, EstimateInfo
from retro.inference.sites import LatentSite, latent_sites, sample_sites
from retro.inference.streams import KeyedSampling, keyed_normals, keyed_uniforms, site_key
from retro.inference.weight_records import records_from_log_weights
from retro.memory import check_allocation
from retro.program import ANSWER_SITE, PARTICLE_DIM, StringProgram

__all__ = [
    "ais",
    "run_chains",
    "Chains",
    "sigmoid_schedule",
    "DEFAULT_NUM_STEPS",
    "DEFAULT_NUM_CHAINS",
    "DEFAULT_LEAPFROG_STEPS",
    "PILOT_CHAIN_IDS",
    "pilot_chains",
]

PROPOSALS = ("prior", "guide")  # AIS starts its chains from one or the other: it has no defensive mixture

# Defaults measured on the typist human (200 answers, prior proposal): mean |AIS - exact| about 0.015 nats.
DEFAULT_NUM_STEPS = 48
DEFAULT_NUM_CHAINS = 64
DEFAULT_LEAPFROG_STEPS = 1  # one leapfrog step: a Metropolis-adjusted Langevin transition
SCHEDULE_DELTA = 1.0  # steepness of the sigmoidal schedule (1: close to linear, best on the typist)
INITIAL_STEP_SIZE = 0.5
ADAPTATION_GAIN = 2.0  # log step size moves by gain * (acceptance - target) after each transition
STEP_JITTER = 0.5  # with several leapfrog steps, step sizes are jittered per chain by up to +-50%
MAX_ENUMERATED = 1024  # joint values of the discrete latents summed out per chain
PILOT_FRACTION = 8  # the step-size pilot runs an eighth as many chains as are reported...
MIN_PILOT_CHAINS = 4  # ...and at least this many
PILOT_CHAIN_IDS = 2**31  # pilot chains are numbered from here: no reported chain shares their streams

AISProposal = Literal["prior", "guide"]


def sigmoid_schedule(num_steps: int, delta: float | None = None) -> torch.Tensor:
    """``beta_0 = 0 < ... < beta_T = 1`` (``T = num_steps``), sigmoidal in ``t`` (Grosse et al. 2013), float64."""
    if num_steps < 1:
        raise RetroError(f"ais: num_steps must be >= 1, got {num_steps}")
    delta = SCHEDULE_DELTA if delta is None else delta
    s = torch.sigmoid(delta * (2 * torch.arange(num_steps + 1, dtype=torch.float64) / num_steps - 1))
    betas = (s - s[0]) / (s[-1] - s[0])
    betas[0], betas[-1] = 0.0, 1.0
    return betas


def pilot_chains(num_chains: int) -> int:
    """Chains of the step-size pilot for ``num_chains`` reported chains: an eighth of them, at least 4."""
    return max(MIN_PILOT_CHAINS, math.ceil(num_chains / PILOT_FRACTION))


class _Noise:
    """The keyed random streams of one chunk of chains: ``[C, B, ...]`` draws keyed by (seed, answer id, chain id,
    stream name), see :mod:`retro.inference.streams`."""

    def __init__(self, seed: int, answer_ids: torch.Tensor, chain_ids: torch.Tensor, device):
        self.seed, self.answer_ids, self.chain_ids, self.device = seed, answer_ids, chain_ids, device

    def uniforms(self, stream: str, elements: int) -> torch.Tensor:
        key = site_key(f"ais/{stream}")
        return keyed_uniforms(self.seed, self.answer_ids, self.chain_ids, key, elements, self.device)

    def normals(self, stream: str, elements: int) -> torch.Tensor:
        key = site_key(f"ais/{stream}")
        return keyed_normals(self.seed, self.answer_ids, self.chain_ids, key, elements, self.device)

    def sampling(self) -> KeyedSampling:
        """A messenger drawing the program's (or guide's) latent sites from the keyed streams."""
        return KeyedSampling(self.seed, self.answer_ids.to(self.device), self.chain_ids.to(self.device))


class _Densities:
    """log p(answer, z) and log q(z) with their gradients, for continuous latents ``x[C, B, D]`` (flattened)."""

    def __init__(
        self,
        program,
        guide,
        proposal,
        sites: dict[str, LatentSite],
        questions,
        answers,
        chains,
        noise: _Noise,
    ):
        self.program, self.guide, self.proposal = program, guide, proposal
        self.questions, self.answers, self.chains = questions, answers, chains
        self.noise = noise
        self.continuous = [
            (s.name, s.event_shape, math.prod(s.event_shape)) for s in sites.values() if not s.discrete
        ]
        self.enumerate = any(s.discrete for s in sites.values())
        self.shape = torch.Size([chains, len(answers)])

    def flatten(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat(
            [
                values[name].expand(self.shape + shape).reshape(self.shape + (n,))
                for name, shape, n in self.continuous
            ],
            -1,
        )

    def unflatten(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        values, start = {}, 0
        for name, shape, n in self.continuous:
            values[name] = x[..., start : start + n].reshape(self.shape + shape)
            start += n
        return values

    @torch.no_grad()
    def initial(self, start: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``x[C, B, D]``: ``start`` (values ``[B, ...]`` shared by all chains) or drawn from the proposal (the
        continuous latents of one prior or guide run per chain)."""
        if start is not None:
            return self.flatten(start)
        fn = self.guide if self.proposal == "guide" else self.program.model
        with self.noise.sampling(), pyro.plate("particles", self.chains, dim=PARTICLE_DIM):
            trace = poutine.trace(fn).get_trace(self.questions, self.answers)
        return self.flatten({name: trace.nodes[name]["value"] for name, _, _ in self.continuous})

    def _log_density(self, fn, values, groups) -> list[torch.Tensor]:
        """For each site filter in ``groups``, the log of ``fn``'s density summed over the sites it keeps, at the
        conditioned ``values``, with the discrete latents summed out: ``[C, B]`` each."""
        conditioned = poutine.condition(fn, data=values)
        if self.enumerate:
            conditioned = poutine.enum(
                config_enumerate(conditioned, default="parallel"), first_available_dim=PARTICLE_DIM - 1
            )
        with pyro.plate("particles", self.chains, dim=PARTICLE_DIM):
            trace = poutine.trace(conditioned).get_trace(self.questions, self.answers)
        terms = [(name, site["fn"].log_prob(site["value"])) for name, site in sample_sites(trace)]
        out = []
        for keep in groups:
            total = sum(t for n, t in terms if keep(n))
            total = total.expand(torch.broadcast_shapes(total.shape, self.shape))
            if total.dim() > 2:  # enumerated discrete values in the dims left of the chains: sum them out
                total = total.reshape((-1,) + self.shape).logsumexp(0)
            out.append(total)
        return out

    def __call__(self, x: torch.Tensor):
        """``(log_p, log_q, grad log_p, grad log_q)`` at ``x``: ``[C, B]`` and ``[C, B, D]``, all detached."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            values = self.unflatten(x)
            if self.proposal == "prior":  # one model run: the joint, and the (marginal) prior of the latents
                log_p, log_q = self._log_density(
                    self.program.model, values, [_every_site, lambda name: name != ANSWER_SITE]
                )
            else:
                (log_p,) = self._log_density(self.program.model, values, [_every_site])
                (log_q,) = self._log_density(self.guide, values, [_every_site])
            grad_p = _grad(log_p, x, retain=True)
            grad_q = _grad(log_q, x, retain=False)
        return log_p.detach(), log_q.detach(), grad_p, grad_q


def _every_site(name: str) -> bool:
    return True


def _grad(total: torch.Tensor, x: torch.Tensor, retain: bool) -> torch.Tensor:
    if not total.requires_grad:
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(total.sum(), x, retain_graph=retain, allow_unused=True)
    if grad is None:
        return torch.zeros_like(x)
    return torch.nan_to_num(grad.detach(), nan=0.0, posinf=0.0, neginf=0.0)  # -inf densities: no direction


def _hmc(density, x, state, beta: float, step_size: torch.Tensor, leapfrog_steps: int, transition: str):
    """One Metropolis-corrected HMC transition leaving pi_beta invariant, per chain.

    ``state`` is ``(log_p, log_q, grad_p, grad_q)`` at ``x``; returns the new ``x``, its state and the acceptance
    probability ``[C, B]``. ``transition`` names the transition's keyed random streams (momentum, jitter, accept)."""
    noise = density.noise
    log_p, log_q, grad_p, grad_q = state

    def target(lp, lq):
        return (1 - beta) * lq + beta * lp if beta > 0 else lq  # avoid 0 * -inf

    def gradient(gp, gq):
        return (1 - beta) * gq + beta * gp

    eps = step_size[None, :, None].to(x.dtype)
    if leapfrog_steps > 1:  # a random trajectory length per chain breaks periodic (non-mixing) trajectories
        eps = eps * (1 + STEP_JITTER * (2 * noise.uniforms(f"{transition}/jitter", 1).to(x.dtype) - 1))
    momentum = noise.normals(f"{transition}/momentum", x.shape[-1]).to(x.dtype)
    p = momentum + 0.5 * eps * gradient(grad_p, grad_q)
    new_x, new_state = x, state
    for step in range(leapfrog_steps):
        new_x = new_x + eps * p
        new_state = density(new_x)
        g = gradient(new_state[2], new_state[3])
        p = p + (eps if step < leapfrog_steps - 1 else 0.5 * eps) * g
    log_ratio = (
        target(new_state[0], new_state[1])
        - 0.5 * p.pow(2).sum(-1)
        - target(log_p, log_q)
        + 0.5 * momentum.pow(2).sum(-1)
    )
    # nan (e.g. -inf to -inf, or a non-finite position): reject
    log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf)
    accept_prob = log_ratio.clamp(max=0.0).exp()
    accept = noise.uniforms(f"{transition}/accept", 1)[..., 0] < accept_prob
    x = torch.where(accept[..., None], new_x, x)
    state = tuple(
        torch.where(accept if old.dim() == 2 else accept[..., None], new, old)
        for new, old in zip(new_state, state)
    )
    return x, state, accept_prob


def _anneal(
    density: _Densities,
    betas,
    leapfrog_steps,
    target_accept,
    progress,
    start=None,
    step_sizes=None,
    warmup: int = 0,
    pilot: int = 0,
):
    """``(log_w[C, B], acceptance[B], step_sizes[T - 1, B])`` for one chunk of answers, along ``betas``.

    Chains start at ``start`` (default: a draw from the proposal). ``step_sizes`` (one row per transition) fixes
    the HMC step sizes instead of adapting them from the chains' acceptance; the ones used are returned.
    ``warmup`` transitions at ``beta_0`` with the first fixed step size move each chain on from ``start`` before
    annealing (each chain independently, so chains sharing one exact start no longer share their first states).
    Reversed betas from an exact posterior sample give reverse AIS (see :mod:`.bdmc`). With ``pilot`` > 0 the
    first ``pilot`` chains adapt the step sizes from their own acceptance alone and are left out of what is
    returned (weights and acceptance of the other chains)."""
    if warmup and step_sizes is None:
        raise RetroError("ais: warm-up transitions need fixed step sizes (from a pilot run)")
    x = density.initial(start)
    state = density(x)
    num_steps = len(betas) - 1
    adapt = step_sizes is None
    if adapt:
        step_size = torch.full((density.shape[1],), INITIAL_STEP_SIZE, dtype=torch.float64, device=x.device)
        used = torch.empty(max(num_steps - 1, 0), density.shape[1], dtype=torch.float64, device=x.device)
    else:
        used = step_sizes.to(device=x.device, dtype=torch.float64)
    for step in range(warmup if len(used) else 0):
        x, state, _ = _hmc(density, x, state, float(betas[0]), used[0], leapfrog_steps, f"warmup/{step}")
    log_w = torch.zeros_like(state[0])
    acceptance = torch.zeros(density.shape[1], dtype=torch.float64, device=x.device)
    counted = 0
    for t in range(1, num_steps + 1):
        delta = float(betas[t] - betas[t - 1])
        log_w = log_w + delta * (state[0] - state[1])
        if t < num_steps:  # the transition after the last increment would not change any weight
            if adapt:
                used[t - 1] = step_size
            x, state, accept_prob = _hmc(
                density, x, state, float(betas[t]), used[t - 1], leapfrog_steps, f"anneal/{t}"
            )
            mean_accept = accept_prob[pilot:].mean(0).to(torch.float64)
            if adapt:
                tuning = accept_prob[:pilot].mean(0).to(torch.float64) if pilot else mean_accept
                step_size = step_size * torch.exp(ADAPTATION_GAIN * (tuning - target_accept))
            if t >= num_steps // 2:  # acceptance reported after the first half (adaptation)
                acceptance += mean_accept
                counted += 1
        if progress is not None:
            progress((density.shape[0] - pilot) * density.shape[1])
    acceptance = acceptance / counted if counted else torch.full_like(acceptance, float("nan"))
    return log_w[pilot:], acceptance, used


def check_arguments(
    proposal, num_steps, num_chains, leapfrog_steps, target_accept, chains_name: str = "num_chains"
) -> None:
    if proposal not in ("prior", "guide"):
        raise RetroError(f"ais: unknown proposal {proposal!r}; expected prior or guide")
    for name, value in (
        ("num_steps", num_steps),
        (chains_name, num_chains),
        ("leapfrog_steps", leapfrog_steps),
    ):
        if int(value) != value or value < 1:
            raise RetroError(f"ais: {name} must be a positive integer, got {value}")
    if not 0.0 < target_accept < 1.0:
        raise RetroError(f"ais: target_accept must be in (0, 1), got {target_accept}")


def _enumerated_values(sites: dict[str, LatentSite]) -> int:
    """How many joint values of the discrete latents every density sums over (checking they can be summed)."""
    discrete = [s for s in sites.values() if s.discrete]
    vector = [s.name for s in discrete if s.event_shape]
    if vector:
        raise RetroError(
            f"ais: vector-valued discrete latent sites ({', '.join(vector)}) cannot be summed out; use importance"
        )
    count = math.prod(s.support_size for s in discrete)
    if count > MAX_ENUMERATED:
        raise RetroError(
            f"ais: discrete latent sites {', '.join(s.name for s in discrete)} have {count} joint values "
            f"(at most {MAX_ENUMERATED} are summed out); use importance"
        )
    return count


class Chains(NamedTuple):
    """Annealing chains for a batch of answers: ``log_w[C, B]``, mean ``acceptance[B]`` (second half of the
    transitions) and the HMC ``step_sizes[T - 1, B]`` used at each transition."""

    log_w: torch.Tensor
    acceptance: torch.Tensor
    step_sizes: torch.Tensor


def run_chains(
    program: StringProgram,
    guide,
    proposal: AISProposal,
    sites: dict[str, LatentSite],
    q_batch,
    a_batch,
    betas: torch.Tensor,
    num_chains: int,
    leapfrog_steps: int,
    target_accept: float,
    max_rows: int,
    progress: bool,
    label: str,
    start: dict[str, torch.Tensor] | None = None,
    step_sizes: torch.Tensor | None = None,
    warmup: int = 0,
    seed: int | None = None,
    answer_ids: torch.Tensor | None = None,
    pilot_chains: int = 0,
) -> Chains:
    """Annealing chains along ``betas`` for encoded batches.

    ``start`` (continuous latent values ``[B, ...]``) starts every chain of an answer there instead of drawing
    from the proposal; ``step_sizes[T - 1, B]`` fixes the step sizes instead of adapting them; ``warmup``
    transitions at ``betas[0]`` precede the annealing (see :func:`_anneal`). Answers are taken one length at a
    time, in chunks of at most ``max_rows`` rows; when an answer's chains span several chunks, each chunk adapts
    its own step sizes and the first chunk's are returned.

    Every random number (the proposal's draws, HMC momenta, jitter, accept/reject) comes from the keyed streams
    ``(seed, answer_ids[b], chain, ...)`` (:mod:`retro.inference.streams`; ``seed=None`` draws a seed from torch's
    global generator), so an answer's weights do not depend on the other answers in its chunk or on ``max_rows``,
    as long as all of its chains fit in one chunk (``max_rows >= num_chains`` x the enumerated values), the
    step sizes are given, or ``pilot_chains`` > 0: then every chunk of an answer's chains runs the same
    ``pilot_chains`` pilot chains beside them (keyed from ``PILOT_CHAIN_IDS``, their weights dropped), whose
    acceptance alone adapts the step sizes, so every chunk follows the same step sizes.
    """
    enumerated = _enumerated_values(sites)
    num_steps = len(betas) - 1
    seed = draw_seed() if seed is None else seed
    answer_ids = torch.arange(len(a_batch)) if answer_ids is None else answer_ids.cpu()
    chains_per_chunk = max(1, min(num_chains, max_rows // enumerated - pilot_chains))
    answers_per_chunk = max(1, max_rows // ((chains_per_chunk + pilot_chains) * enumerated))
    num_answers = len(a_batch)
    # Chunks honour max_rows; the kept weights and step-size traces are whole: checked before they are allocated.
    check_allocation(
        8 * num_answers * (num_chains + num_steps),
        f"{label} with {num_chains} chains for {num_answers} answers (every chain's log weight is kept)",
    )
    log_w = torch.empty(num_chains, num_answers, dtype=torch.float64)
    acceptance = torch.zeros(num_answers, dtype=torch.float64)
    used = torch.empty(max(num_steps - 1, 0), num_answers, dtype=torch.float64)
    with tqdm(
        total=num_chains * num_answers * num_steps, desc=label, unit="row", disable=not progress, leave=False
    ) as bar:
        for index in length_buckets(a_batch.lengths.cpu(), answers_per_chunk):
            device_index = index.to(a_batch.tokens.device)
            q_chunk, a_chunk = q_batch[device_index], a_batch[device_index]
            chunk_start = None if start is None else {n: v[device_index] for n, v in start.items()}
            chunk_steps = None if step_sizes is None else step_sizes[:, index]
            for c_start in range(0, num_chains, chains_per_chunk):
                chains = min(chains_per_chunk, num_chains - c_start)
                pilot_ids = torch.arange(PILOT_CHAIN_IDS, PILOT_CHAIN_IDS + pilot_chains)
                chain_ids = torch.cat([pilot_ids, torch.arange(c_start, c_start + chains)])
                noise = _Noise(seed, answer_ids[index], chain_ids, a_batch.tokens.device)
                density = _Densities(
                    program, guide, proposal, sites, q_chunk, a_chunk, pilot_chains + chains, noise
                )
                chunk_w, chunk_acc, chunk_used = _anneal(
                    density,
                    betas,
                    leapfrog_steps,
                    target_accept,
                    bar.update,
                    chunk_start,
                    chunk_steps,
                    warmup,
                    pilot_chains,
                )
                log_w[c_start : c_start + chains, index] = chunk_w.detach().to(torch.float64).cpu()
                acceptance[index] += chunk_acc.cpu() * chains / num_chains
                if c_start == 0:
                    used[:, index] = chunk_used.cpu()
    return Chains(log_w, acceptance, used)


@estimator
def ais(
    program: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    guide=None,
    num_particles: int = DEFAULT_NUM_CHAINS,
    seed: int | None = None,
    answer_ids: Sequence[int] | torch.Tensor | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
    proposal: AISProposal | None = None,
    num_steps: int = DEFAULT_NUM_STEPS,
    leapfrog_steps: int = DEFAULT_LEAPFROG_STEPS,
    target_accept: float = 0.8,
) -> Estimate:
    """Annealed importance sampling estimate of log p(answer | question), per answer (see the module docstring).

    Args:
        guide: the guide q(z | question, answer), needed for ``proposal="guide"``.
        num_particles: independent chains (weights) per answer, vectorized as a plate at ``dim=-2``.
        proposal: where the chains start and what they anneal from: ``"prior"`` or ``"guide"`` (default: the
            guide when one is given, else the prior).
        num_steps: annealing steps T (T - 1 HMC transitions); ``num_steps=1`` is importance sampling.
        leapfrog_steps: leapfrog steps per HMC transition.
        target_accept: the acceptance probability the per-answer step sizes are adapted toward.
        max_rows: at most this many chain x answer rows (x enumerated discrete values) are evaluated at once.
        seed, answer_ids, progress: see :func:`retro.inference.registry.estimate`.

    Returns:
        :class:`~retro.inference.results.Estimate`: records of ``kind="estimate"``, method ``"ais[prior]"`` or
        ``"ais[guide]"`` (log of the mean AIS weight over chains, its delta-method standard error, ESS and Pareto
        k-hat); ``info.log_weights`` ``[C, B]``, and ``info.diagnostics``: ``acceptance`` (``Tensor[B]``, the mean
        HMC acceptance probability over chains and the second half of the transitions, ``nan`` for
        ``num_steps=1``), ``step_sizes`` (``Tensor[T - 1, B]``) and ``num_steps``. A program without continuous
        latents (none, or only discrete ones) gets its exact value (:func:`~retro.inference.exact.exact`).
    """
    proposal = proposal or preferred_proposal(guide, PROPOSALS)
    check_arguments(proposal, num_steps, num_particles, leapfrog_steps, target_accept, "num_particles")
    sites = latent_sites(program, questions[:1], answers[:1])
    if all(site.discrete for site in sites.values()):  # no continuous latents: exact (enumerated) values
        return exact(program, questions, answers, max_rows=max_rows, seed=seed, answer_ids=answer_ids)
    if proposal == "guide" and guide is None:
        raise RetroError("ais[guide] needs a trained guide; this model has none (use the prior proposal)")
    q_batch, a_batch = program.encode_questions(questions), program.encode_answers(answers)
    method = f"ais[{proposal}]"
    chains = run_chains(
        program,
        guide,
        proposal,
        sites,
        q_batch,
        a_batch,
        sigmoid_schedule(num_steps),
        num_particles,
        leapfrog_steps,
        target_accept,
        max_rows,
        progress,
        method,
        seed=seed,
        answer_ids=answer_ids,
        pilot_chains=pilot_chains(num_particles) if num_steps > 1 else 0,  # no transitions, nothing to tune
    )
    records = records_from_log_weights(chains.log_w, questions, answers, method, "estimate")
    diagnostics = {"acceptance": chains.acceptance, "step_sizes": chains.step_sizes, "num_steps": num_steps}
    return Estimate(
        records, EstimateInfo(method, num_particles, log_weights=chains.log_w, diagnostics=diagnostics)
    )


register(
    Registration(
        "ais",
        ais,
        kind="estimate",
        budget="chains",
        default_budget=DEFAULT_NUM_CHAINS,
        small_budget=16,
        proposals=PROPOSALS,
        guide_proposals=("guide",),
        options=("proposal", "num_steps", "leapfrog_steps", "target_accept"),
    )
)
