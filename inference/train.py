"""Retrodiction training: maximize the ELBO with an amortized guide (SVI), minibatches, held-out log p.

With discrete latents the objective is Pyro's ``TraceEnum_ELBO`` with the guide's discrete sites enumerated: the
ELBO is computed exactly (no score-function noise, non-zero gradients for the guide). Continuous latents use
``Trace_ELBO`` (reparameterized). With no latents it is exact maximum likelihood.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, config_enumerate
from tqdm import tqdm

from retro.errors import RetroError
from retro.inference.guides import AmortizedGuide
from retro.inference.importance import importance
from retro.inference.results import summarize
from retro.program import StringProgram

__all__ = ["TrainConfig", "TrainReport", "train", "elbo_loss"]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train`.

    Attributes:
        steps: optimizer steps (at most; ``minutes`` may stop earlier).
        batch_size: answers per step.
        learning_rate: Adam step size.
        minutes: wall-time cap, or ``None``.
        eval_every: steps between held-out evaluations (and at the end).
        eval_particles: particles of the guide importance estimate of held-out log p.
        eval_answers: held-out answers used per evaluation (the first ones).
        seed: seeds torch (minibatch order, particles).
        progress: show a progress bar.
    """

    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 3e-3
    minutes: float | None = None
    eval_every: int = 200
    eval_particles: int = 64
    eval_answers: int = 200
    seed: int = 0
    progress: bool = True


@dataclass
class TrainReport:
    """What happened: one history row per evaluation, and the best held-out score (restored into the model)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_heldout: float = -math.inf
    best_step: int = 0
    steps: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _no_guide(questions, answers=None):
    return None


def elbo_loss(imitator: StringProgram, guide: AmortizedGuide | None):
    """A ``torch.nn.Module`` whose call ``(questions, answers)`` returns minus the ELBO summed over answers."""
    if guide is not None and any(site.discrete for site in guide.sites.values()):
        return TraceEnum_ELBO(max_plate_nesting=1)(imitator.model, config_enumerate(guide))
    return Trace_ELBO(max_plate_nesting=1)(imitator.model, guide if guide is not None else _no_guide)


def _heldout_log_prob(imitator, guide, heldout, config: TrainConfig) -> tuple[float, float]:
    questions, answers = heldout
    questions, answers = list(questions[: config.eval_answers]), list(answers[: config.eval_answers])
    records = importance(
        imitator, questions, answers, guide=guide, proposal="guide", num_particles=config.eval_particles
    )
    summary = summarize(records)
    return summary.log_prob_mean, summary.stderr


def train(
    imitator: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    guide: AmortizedGuide | None = None,
    heldout: tuple[Sequence[str], Sequence[str]] | None = None,
    config: TrainConfig = TrainConfig(),
    on_improve: Callable[[TrainReport], None] | None = None,
    objective: torch.nn.Module | None = None,
) -> TrainReport:
    """Train ``imitator`` (and ``guide``) on (question, answer) pairs; return the report.

    ``objective`` (default: minus the ELBO per answer) maps a minibatch ``(questions, answers)`` to the loss; an
    :class:`~retro.inference.adversarial.AdversarialObjective` trains adversarially (or mixed). With the default
    objective, the parameters with the best held-out estimated log p (or the last ones, without ``heldout``) are
    restored at the end and ``on_improve(report)`` is called after each new best (e.g. to write a checkpoint).
    Another objective is not scored by held-out log p, so every evaluation counts as the new "best" (the last
    parameters are kept, and ``on_improve`` writes every evaluation). Evaluation rows also carry what the objective
    reports (e.g. the adversarial reward and discriminator loss).
    """
    if len(questions) != len(answers) or not answers:
        raise RetroError(f"need as many questions as answers (>0), got {len(questions)} and {len(answers)}")
    torch.manual_seed(config.seed)
    q_all, a_all = imitator.encode_questions(questions), imitator.encode_answers(answers)
    retrodiction = objective is None
    if retrodiction:
        negative_elbo = elbo_loss(imitator, guide)

        def objective(q_batch, a_batch):
            return negative_elbo(q_batch, a_batch) / len(a_batch)

    params = list(imitator.parameters()) + (list(guide.parameters()) if guide is not None else [])
    optimizer = torch.optim.Adam(params, lr=config.learning_rate)
    report = TrainReport()
    best_state = None
    start = time.monotonic()
    deadline = start + 60 * config.minutes if config.minutes else math.inf
    order = torch.randperm(len(answers))
    cursor, running = 0, None
    bar = tqdm(total=config.steps, desc="train", unit="step", disable=not config.progress)

    def evaluate(step: int) -> None:
        nonlocal best_state
        row: dict[str, Any] = {"step": step, "seconds": round(time.monotonic() - start, 2), "loss": running}
        row.update(getattr(objective, "last", {}))
        if heldout is not None:
            row["heldout_log_prob"], row["heldout_stderr"] = _heldout_log_prob(
                imitator, guide, heldout, config
            )
        report.history.append(row)
        score = row.get("heldout_log_prob", -(running if running is not None else math.inf))
        if best_state is None or score > report.best_heldout or not retrodiction:
            report.best_heldout, report.best_step = score, step
            best_state = copy.deepcopy(
                (imitator.state_dict(), guide.state_dict() if guide is not None else None)
            )
            if on_improve is not None:
                on_improve(report)
        bar.set_postfix(
            loss=f"{running:.3f}" if running is not None else "-",
            heldout=f"{row.get('heldout_log_prob', float('nan')):.3f}",
        )

    step = 0
    for step in range(1, config.steps + 1):
        if cursor + config.batch_size > len(order):
            order, cursor = torch.randperm(len(answers)), 0
        index = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        q_batch, a_batch = q_all[index], a_all[index]
        loss = objective(q_batch, a_batch)
        if not torch.isfinite(loss):
            bar.close()
            raise RetroError(
                f"training stopped at step {step}: the loss is {loss.item()} "
                "(the best parameters so far are kept)"
            )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        bar.update(1)
        if step % config.eval_every == 0:
            evaluate(step)
        if time.monotonic() > deadline:
            break
    if not report.history or report.history[-1]["step"] != step:
        evaluate(step)
    bar.close()
    imitator.load_state_dict(best_state[0])
    if guide is not None:
        guide.load_state_dict(best_state[1])
    report.steps, report.seconds = step, time.monotonic() - start
    return report
