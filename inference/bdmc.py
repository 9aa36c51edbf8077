"""Bidirectional Monte Carlo (Grosse, Ghahramani & Adams 2015): a sandwich around log p for simulated answers.

On answers simulated from the program itself, the latents that generated each answer are an exact posterior
sample. Forward AIS (from the proposal to the posterior) gives a stochastic *lower* bound of log p; reverse AIS
(from that exact posterior sample back to the proposal, along the same schedule) estimates 1 / p, so minus its log
is a stochastic *upper* bound. The gap between the two bounds the error of AIS at this budget on data like this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from pyro import poutine

from retro.errors import RetroError
from retro.inference.ais import (
    DEFAULT_LEAPFROG_STEPS,
    DEFAULT_NUM_STEPS,
    AISProposal,
    check_arguments,
    run_chains,
    sigmoid_schedule,
)
from retro.inference.exact import exact_log_prob
from retro.inference.sites import latent_sites
from retro.inference.weighted import records_from_log_weights
from retro.inference.weights import DEFAULT_MAX_ROWS
from retro.program import ANSWER_SITE, StringProgram
from retro.text import StringBatch

__all__ = ["bdmc", "SandwichEstimate", "DEFAULT_BDMC_CHAINS"]

DEFAULT_BDMC_CHAINS = 16


@dataclass(frozen=True)
class SandwichEstimate:
    """Stochastic lower and upper bounds of log p(answer | question) for one simulated answer.

    Attributes:
        log_prob_lower: forward AIS, log of the mean weight (below log p in expectation).
        log_prob_upper: reverse AIS, minus log of the mean reverse weight (above log p in expectation).
        lower_stderr, upper_stderr: their Monte Carlo standard errors across chains (delta method).
        gap: upper - lower.
        exact: the exact log p where the program has one (enumeration or quadrature), else ``None``.
    """

    question: str
    answer: str
    log_prob_lower: float
    log_prob_upper: float
    lower_stderr: float
    upper_stderr: float
    gap: float
    exact: float | None
    num_steps: int
    num_chains: int

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def _simulate(program: StringProgram, questions: Sequence[str], continuous: list[str]):
    """One answer per question from the program, with the continuous latents that produced it."""
    q_batch = program.encode_questions(questions)
    trace = poutine.trace(program.model).get_trace(q_batch, None)
    tokens = trace.nodes[ANSWER_SITE]["value"].expand(len(questions), -1)
    a_batch = StringBatch.from_tokens(tokens, program.codec.eos)
    a_batch = a_batch[torch.arange(len(questions))]  # trim the padding to the longest answer
    start = {
        name: trace.nodes[name]["value"].expand((len(questions),) + trace.nodes[name]["value"].shape[1:])
        for name in continuous
    }
    return q_batch, a_batch, start


def bdmc(
    program: StringProgram,
    questions: Sequence[str],
    guide=None,
    proposal: AISProposal = "prior",
    num_steps: int = DEFAULT_NUM_STEPS,
    num_chains: int = DEFAULT_BDMC_CHAINS,
    leapfrog_steps: int = DEFAULT_LEAPFROG_STEPS,
    target_accept: float = 0.8,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    progress: bool = False,
) -> list[SandwichEstimate]:
    """Simulate one answer per question from ``program`` and sandwich its log p between forward and reverse AIS.

    Both directions use the same schedule (``num_steps`` sigmoidal steps), chains and HMC settings as
    :func:`~retro.inference.ais.ais`. Discrete latents are summed out inside the densities, so the exact posterior
    sample needed is that of the continuous latents, which the simulation provides.
    """
    if not questions:
        raise RetroError("bdmc: no questions")
    check_arguments(proposal, num_steps, num_chains, leapfrog_steps, target_accept)
    torch.manual_seed(seed)
    sites = latent_sites(program, questions[:1], ("",))
    continuous = [s.name for s in sites.values() if not s.discrete]
    if not continuous:
        raise RetroError("bdmc needs continuous latents; this program's log p is exact (use exact)")
    if proposal == "guide" and guide is None:
        raise RetroError("bdmc with the guide proposal needs a trained guide; this model has none")
    q_batch, a_batch, start = _simulate(program, questions, continuous)
    betas = sigmoid_schedule(num_steps)
    settings = (num_chains, leapfrog_steps, target_accept, max_rows, progress)
    forward, _ = run_chains(
        program, guide, proposal, sites, q_batch, a_batch, betas, *settings, "bdmc forward"
    )
    reverse, _ = run_chains(
        program,
        guide,
        proposal,
        sites,
        q_batch,
        a_batch,
        betas.flip(0),
        *settings,
        "bdmc reverse",
        start=start,
    )
    answers = a_batch.to_strings(program.codec)
    lower = records_from_log_weights(forward, questions, answers, "bdmc[forward]", "estimate")
    inverse = records_from_log_weights(reverse, questions, answers, "bdmc[reverse]", "estimate")  # log(1/p)
    try:
        truth = exact_log_prob(program, q_batch, a_batch, sites).tolist()
    except RetroError:
        truth = [None] * len(questions)
    return [
        SandwichEstimate(
            q,
            a,
            lo.log_prob,
            -inv.log_prob,
            lo.stderr,
            inv.stderr,
            -inv.log_prob - lo.log_prob,
            t,
            num_steps,
            num_chains,
        )
        for q, a, lo, inv, t in zip(questions, answers, lower, inverse, truth)
    ]
