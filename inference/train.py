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
from retro.inference.collapse import collapse_diagnostics
from retro.inference.guides import AmortizedGuide
from retro.inference.importance import importance
from retro.inference.results import summarize
from retro.inference.train_state import TrainState
from retro.program import StringProgram

__all__ = [
    "TrainConfig",
    "TrainReport",
    "train",
    "elbo_loss",
    "learning_rate_at",
    "LR_SCHEDULES",
    "COSINE_FINAL_FRACTION",
]


LR_SCHEDULES = ("constant", "cosine")
COSINE_FINAL_FRACTION = 0.02


def learning_rate_at(config: TrainConfig, step: int) -> float:
    """The step size of optimizer step ``step`` (1-based) under ``config.lr_schedule``."""
    if config.lr_schedule == "constant" or config.steps == 1:
        return config.learning_rate
    progress = min(1.0, (step - 1) / (config.steps - 1))
    fraction = COSINE_FINAL_FRACTION + (1 - COSINE_FINAL_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))
    return config.learning_rate * fraction


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train`.

    Attributes:
        steps: optimizer steps (at most; ``minutes`` may stop earlier).
        batch_size: answers per step.
        learning_rate: Adam step size (the peak one, under a schedule).
        lr_schedule: ``"constant"``, or ``"cosine"``: the step size falls along a half cosine from
            ``learning_rate`` at step 1 to :data:`COSINE_FINAL_FRACTION` of it at step ``steps`` (a function of the
            step alone, so a resumed run follows it exactly). Give ``steps`` that ``minutes`` lets the run reach.
        minutes: wall-time cap, or ``None``.
        eval_every: steps between held-out evaluations (and at the end).
        eval_particles: particles of the guide importance estimate of held-out log p.
        eval_answers: held-out answers used per evaluation (the first ones).
        seed: seeds torch (minibatch order, particles).
        progress: show a progress bar.
        checkpoint_every: steps between training-state checkpoints (``on_checkpoint``), or ``None``.
        patience: with the default (retrodiction) objective, stop after this many evaluations without a new best
            held-out log p (early stopping), or ``None``.
    """

    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 3e-3
    lr_schedule: str = "constant"
    minutes: float | None = None
    eval_every: int = 200
    eval_particles: int = 64
    eval_answers: int = 200
    seed: int = 0
    progress: bool = True
    checkpoint_every: int | None = None
    patience: int | None = None

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_every", "eval_particles", "eval_answers"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise RetroError(f"training: {name} must be a positive integer, got {value}")
        for name in ("checkpoint_every", "patience"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 1):
                raise RetroError(f"training: {name} must be a positive integer, got {value}")
        if not self.learning_rate >= 0:
            raise RetroError(f"training: learning_rate must be >= 0, got {self.learning_rate}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise RetroError(
                f"training: lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.minutes is not None and not self.minutes > 0:
            raise RetroError(f"training: minutes must be > 0, got {self.minutes}")


@dataclass
class TrainReport:
    """What happened: one history row per evaluation, and the best held-out score (restored into the model)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_heldout: float = -math.inf
    best_step: int = 0
    steps: int = 0
    seconds: float = 0.0
    stopped_early: bool = False

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


def _collapse_row(imitator, guide, heldout, config: TrainConfig) -> dict[str, Any]:
    questions, answers = list(heldout[0][: config.eval_answers]), list(heldout[1][: config.eval_answers])
    if len(answers) < 2:
        return {}
    diagnostics = collapse_diagnostics(imitator, guide, questions, answers)
    return {
        "kl": diagnostics.kl,
        "mutual_information": diagnostics.mutual_information,
        "active_units": diagnostics.active_units,
    }


def train(
    imitator: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    guide: AmortizedGuide | None = None,
    heldout: tuple[Sequence[str], Sequence[str]] | None = None,
    config: TrainConfig = TrainConfig(),
    on_improve: Callable[[TrainReport], None] | None = None,
    objective: torch.nn.Module | None = None,
    on_evaluate: Callable[[dict[str, Any]], None] | None = None,
    on_checkpoint: Callable[[TrainState], None] | None = None,
    resume: TrainState | None = None,
) -> TrainReport:
    """Train ``imitator`` (and ``guide``) on (question, answer) pairs; return the report.

    ``objective`` (default: minus the ELBO per answer) maps a minibatch ``(questions, answers)`` to the loss; an
    :class:`~retro.inference.adversarial.AdversarialObjective` trains adversarially (or mixed). With a retrodiction
    objective (the default, or one whose ``retrodiction`` attribute is true: IWAE, the collapse-aware ELBO), the
    parameters with the best held-out estimated log p (or the last ones, without ``heldout``) are restored at the
    end, ``on_improve(report)`` is called after each new best (e.g. to write a checkpoint), and ``config.patience``
    stops the run after that many evaluations without a new best. Another objective is not scored by held-out log
    p, so every evaluation counts as the new "best" (the last parameters are kept, and ``on_improve`` writes every
    evaluation). Evaluation rows also carry what the objective reports (e.g. the
    adversarial reward) and are passed to ``on_evaluate`` as they come (e.g. to append them to a log).

    ``on_checkpoint(state)`` receives a :class:`~retro.inference.train_state.TrainState` every
    ``config.checkpoint_every`` steps and at the end; ``resume`` continues from such a state exactly (same
    minibatches and random draws as a run that never stopped). A non-finite loss stops training with a
    :class:`~retro.errors.RetroError` before any parameter is changed by it.

    Steps run in training mode (dropout on), evaluations in eval mode; the modules are left in eval mode.
    """
    if len(questions) != len(answers) or not answers:
        raise RetroError(f"need as many questions as answers (>0), got {len(questions)} and {len(answers)}")
    torch.manual_seed(config.seed)
    q_all, a_all = imitator.encode_questions(questions), imitator.encode_answers(answers)
    # Retrodiction objectives (the default ELBO, IWAE, the collapse-aware ELBO) are judged by held-out log p: the
    # best parameters are kept and early stopping applies. Others (adversarial) keep the last parameters.
    retrodiction = objective is None or getattr(objective, "retrodiction", False)
    if objective is None:
        negative_elbo = elbo_loss(imitator, guide)

        def objective(q_batch, a_batch):
            return negative_elbo(q_batch, a_batch) / len(a_batch)

    modules = {"imitator": imitator, "guide": guide}
    if isinstance(objective, torch.nn.Module):
        modules["objective"] = objective  # e.g. a discriminator
    params = list(imitator.parameters()) + (list(guide.parameters()) if guide is not None else [])
    params = [p for p in params if p.requires_grad]  # a frozen base (language models) is not optimized
    optimizer = torch.optim.Adam(params, lr=config.learning_rate)
    report = TrainReport()
    best_parameters: dict[str, torch.Tensor] | None = None
    order, cursor, running, first_step, waited, seconds_before = (
        torch.randperm(len(answers)),
        0,
        None,
        1,
        0,
        0.0,
    )
    if resume is not None:
        _load_parameters(modules, resume.parameters)
        optimizer.load_state_dict(resume.optimizer)
        order, cursor, running, first_step = resume.order, resume.cursor, resume.running, resume.step + 1
        report.history, report.best_heldout, report.best_step = (
            list(resume.history),
            resume.best_heldout,
            resume.best_step,
        )
        best_parameters, waited, seconds_before = (
            resume.best_parameters,
            resume.evaluations_since_best,
            resume.seconds,
        )
        torch.set_rng_state(resume.rng)
        if resume.cuda_rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(resume.cuda_rng)
    start = time.monotonic()
    deadline = start + 60 * config.minutes if config.minutes else math.inf
    bar = tqdm(
        total=config.steps, initial=first_step - 1, desc="train", unit="step", disable=not config.progress
    )

    def snapshot(step: int) -> TrainState:
        return TrainState(
            step=step,
            cursor=cursor,
            order=order,
            running=running,
            history=list(report.history),
            best_heldout=report.best_heldout,
            best_step=report.best_step,
            evaluations_since_best=waited,
            seconds=seconds_before + time.monotonic() - start,
            rng=torch.get_rng_state(),
            parameters=_parameters(modules),
            best_parameters=best_parameters if best_parameters is not None else _parameters(modules),
            optimizer=copy.deepcopy(optimizer.state_dict()),  # the live state changes in place
            cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        )

    def evaluate(step: int) -> None:
        nonlocal best_parameters, waited
        _set_training(modules, False)  # dropout off: held-out scores are of the model, not of a thinned one
        seconds = round(seconds_before + time.monotonic() - start, 2)
        row: dict[str, Any] = {"step": step, "seconds": seconds, "loss": running}
        row.update(getattr(objective, "last", {}))
        if heldout is not None:
            row["heldout_log_prob"], row["heldout_stderr"] = _heldout_log_prob(
                imitator, guide, heldout, config
            )
            if guide is not None and guide.sites:  # posterior collapse, visible as it happens
                row.update(_collapse_row(imitator, guide, heldout, config))
        report.history.append(row)
        if on_evaluate is not None:
            on_evaluate(row)
        score = row.get("heldout_log_prob", -(running if running is not None else math.inf))
        if best_parameters is None or score > report.best_heldout or not retrodiction:
            report.best_heldout, report.best_step, waited = score, step, 0
            best_parameters = _parameters(modules)
            if on_improve is not None:
                on_improve(report)
        else:
            waited += 1
        bar.set_postfix(
            loss=f"{running:.3f}" if running is not None else "-",
            heldout=f"{row.get('heldout_log_prob', float('nan')):.3f}",
        )
        _set_training(modules, True)

    step = first_step - 1
    try:  # whatever stops the run (an error, Ctrl-C), the modules end in eval mode: no dropout when scored
        _set_training(modules, True)
        for step in range(first_step, config.steps + 1):
            if cursor + config.batch_size > len(order):
                order, cursor = torch.randperm(len(answers)), 0
            index = order[cursor : cursor + config.batch_size]
            cursor += config.batch_size
            q_batch, a_batch = q_all[index], a_all[index]
            loss = objective(q_batch, a_batch)
            if not torch.isfinite(loss):
                raise RetroError(
                    f"training stopped at step {step}: the loss is {loss.item()} "
                    "(the best parameters so far and the last checkpoint are kept)"
                )
            optimizer.zero_grad()
            loss.backward()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(config, step)
            optimizer.step()
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
            bar.update(1)
            if step % config.eval_every == 0:
                evaluate(step)
            if on_checkpoint is not None and config.checkpoint_every and step % config.checkpoint_every == 0:
                on_checkpoint(snapshot(step))
            if config.patience is not None and retrodiction and waited >= config.patience:
                report.stopped_early = True
                break
            if time.monotonic() > deadline:
                break
        if not report.history or report.history[-1]["step"] != step:
            evaluate(step)
        if on_checkpoint is not None:
            on_checkpoint(snapshot(step))
    finally:
        bar.close()
        _set_training(modules, False)
    _load_parameters(modules, best_parameters)
    report.steps, report.seconds = step, seconds_before + time.monotonic() - start
    return report


def _set_training(modules: dict[str, torch.nn.Module | None], mode: bool) -> None:
    for module in modules.values():
        if module is not None:
            module.train(mode)


def _parameters(modules: dict[str, torch.nn.Module | None]) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value.detach().clone()
        for name, module in modules.items()
        if module is not None
        for key, value in _state(module).items()
    }


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What a module trains (an imitator on a frozen base: only its trained tensors)."""
    return module.trained_state() if hasattr(module, "trained_state") else module.state_dict()


def _load_parameters(modules: dict[str, torch.nn.Module | None], tensors: dict[str, torch.Tensor]) -> None:
    for name, module in modules.items():
        if module is not None:
            prefix = f"{name}."
            part = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            (module.load_trained_state if hasattr(module, "load_trained_state") else module.load_state_dict)(
                part
            )
