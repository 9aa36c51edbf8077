"""Retrodiction training: maximize the ELBO with an amortized guide (SVI), minibatches, held-out log p.

With discrete latents the objective is Pyro's ``TraceEnum_ELBO`` with the guide's discrete sites enumerated: the
ELBO is computed exactly (no score-function noise, non-zero gradients for the guide). Continuous latents use
``Trace_ELBO`` (reparameterized). With no latents it is exact maximum likelihood.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.infer.elbo import ELBOModule
from tqdm import tqdm

from retro.distributed import World, current_world
from retro.distributions import smoothed_labels
from retro.errors import RetroError
from retro.inference.collapse import collapse_diagnostics
from retro.inference.guides import AmortizedGuide
from retro.inference.importance import importance
from retro.inference.log_weights import preferred_proposal
from retro.inference.results import summarize
from retro.inference.schedules import (
    COSINE_FINAL_FRACTION,
    LR_SCHEDULES,
    schedule_progress,
    scheduled_learning_rate,
)
from retro.inference.train_state import TrainState, trained_parameters
from retro.program import StringProgram

__all__ = [
    "TrainConfig",
    "TrainReport",
    "train",
    "elbo_loss",
    "learning_rate_at",
    "LR_SCHEDULES",
    "COSINE_FINAL_FRACTION",
    "random_key",
    "KEEP_WITHIN",
]

KEEP_WITHIN = 2.0
"""Parameters evaluated on held-out data are kept unless their score is below the best seen by more than this many
Monte Carlo standard errors of the difference (see ``_Run._keep_if_best``)."""


def learning_rate_at(config: TrainConfig, step: int, seconds: float = 0.0) -> float:
    """The step size of optimizer step ``step`` (1-based), ``seconds`` into training, under ``config.lr_schedule``
    (by step when ``config.steps`` is set, else by the share of the ``config.minutes`` budget spent)."""
    progress = schedule_progress(step, config.steps, seconds, config.minutes)
    return scheduled_learning_rate(config.lr_schedule, config.learning_rate, progress)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train`.

    Attributes:
        steps: optimizer steps (at most; ``minutes`` may stop earlier), or ``None``: as many as ``minutes`` allows
            (the budget then counts training seconds over resumed runs too).
        batch_size: answers per step.
        learning_rate: Adam step size (the peak one, under a schedule).
        lr_schedule: ``"constant"``, or ``"cosine"``: the step size falls along a half cosine from
            ``learning_rate`` at step 1 to :data:`COSINE_FINAL_FRACTION` of it at step ``steps`` (a function of the
            step alone, so a resumed run follows it exactly), or, without ``steps``, at the end of the ``minutes``
            budget (a function of training seconds, which the training state keeps; see
            :mod:`retro.inference.schedules`).
        minutes: wall-time cap, or ``None``.
        eval_every: steps between held-out evaluations (and at the end).
        eval_particles: particles of the guide importance estimate of held-out log p.
        eval_answers: held-out answers used per evaluation (the first ones).
        seed: seeds torch (minibatch order, particles).
        progress: show a progress bar.
        checkpoint_every: steps between training-state checkpoints (``on_checkpoint``), or ``None``.
        patience: with the default (retrodiction) objective, stop after this many evaluations without a new best
            held-out log p (early stopping), or ``None``.
        slices: each minibatch is cut into this many equal slices, each with its own random stream keyed by
            (seed, step, slice), their gradients averaged; ``None``: one per process. A run on ``R`` processes
            needs a multiple of ``R`` (each process takes ``slices / R`` of them), so a fixed ``slices`` gives the
            same training whatever the number of processes (up to the order of floating-point sums).
        length_buckets: minibatches of answers of similar length: at each reshuffle, every pool of this many
            minibatches (of the shuffled answers) is sorted by answer length, then question length, and cut into
            minibatches, and the minibatches are shuffled. A minibatch is padded to its longest answer, so this
            runs fewer padded decoder positions (on CMUdict, 50 makes a step about 1.4x faster); ``None``: plain
            random minibatches.
        average_decay: evaluations, the kept best parameters and so the saved model use an exponential moving
            average of the imitator's and the guide's parameters (Polyak averaging, a smoother point than the last
            step's) with this decay per step, e.g. ``0.999`` (about the last 1,000 steps); early on the decay is
            ``min(average_decay, (1 + step) / (10 + step))``, so the average does not remember the initialization.
            ``None``: the parameters as they are.
        label_smoothing: the training steps' answer log probabilities are label-smoothed with this ``epsilon``
            (:func:`retro.distributions.smoothed_labels`); held-out evaluations score the model as it is.
            ``None``: off. For retrodiction objectives (a sampled one would score its samples with it).
    """

    steps: int | None = 2000
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
    slices: int | None = None
    length_buckets: int | None = None
    average_decay: float | None = None
    label_smoothing: float | None = None

    def __post_init__(self):
        if self.steps is None and self.minutes is None:
            raise RetroError("training: give steps, minutes, or both")
        for name in ("steps", "batch_size", "eval_every", "eval_particles", "eval_answers"):
            value = getattr(self, name)
            if name == "steps" and value is None:
                continue
            if int(value) != value or value < 1:
                raise RetroError(f"training: {name} must be a positive integer, got {value}")
        for name in ("checkpoint_every", "patience", "slices", "length_buckets"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 1):
                raise RetroError(f"training: {name} must be a positive integer, got {value}")
        if not self.learning_rate >= 0:
            raise RetroError(f"training: learning_rate must be >= 0, got {self.learning_rate}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise RetroError(
                f"training: lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.average_decay is not None and not 0 <= self.average_decay < 1:
            raise RetroError(f"training: average_decay must be in [0, 1), got {self.average_decay}")
        if self.label_smoothing is not None and not 0 <= self.label_smoothing < 1:
            raise RetroError(f"training: label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.minutes is not None and not self.minutes > 0:
            raise RetroError(f"training: minutes must be > 0, got {self.minutes}")


@dataclass
class TrainReport:
    """What happened: one history row per evaluation, and the kept parameters' step and held-out score (restored
    into the model: the best evaluated, or a later one within :data:`KEEP_WITHIN` Monte Carlo standard errors of
    it)."""

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


class _ElboModule(ELBOModule):
    """Pyro's ELBO module (the same model and registered guide, the same loss), calling the guide through
    ``call_guide``: for an :class:`AmortizedGuide`, its ``forward``. Through ``PyroModule.__call__`` every call
    would also send one Pyro ``param`` message per guide parameter (22 for a guide of one continuous site) and
    swap in the module's parameter store, work the ELBO ignores (training optimizes the parameters itself)."""

    def __init__(self, model, guide, elbo, call_guide):
        super().__init__(model, guide, elbo)
        self.call_guide = call_guide

    def forward(self, *args, **kwargs):
        return self.elbo.differentiable_loss(self.model, self.call_guide, *args, **kwargs)


def elbo_loss(imitator: StringProgram, guide: AmortizedGuide | None):
    """A ``torch.nn.Module`` whose call ``(questions, answers)`` returns minus the ELBO summed over answers."""
    if guide is None:
        return _ElboModule(imitator.model, _no_guide, Trace_ELBO(max_plate_nesting=1), _no_guide)
    # An AmortizedGuide holds plain torch modules (no PyroParam or PyroSample): its forward alone is the guide
    call_guide = guide.forward if type(guide) is AmortizedGuide else guide
    if any(site.discrete for site in guide.sites.values()):
        wrapped = config_enumerate(guide)
        return _ElboModule(
            imitator.model, wrapped, TraceEnum_ELBO(max_plate_nesting=1), config_enumerate(call_guide)
        )
    return _ElboModule(imitator.model, guide, Trace_ELBO(max_plate_nesting=1), call_guide)


def random_key(seed: int, *parts: int | str) -> int:
    """A 63-bit seed for the random stream named by ``(seed, *parts)`` (e.g. a step and a slice of it)."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _seed(key: int) -> None:
    """``torch.manual_seed(key)``, less its per-call cost where CUDA is not in use: there it would record a stack
    trace (milliseconds, at every step) to seed CUDA's generators if CUDA were ever started."""
    if torch.cuda.is_initialized() or _other_accelerators():
        torch.manual_seed(key)
    else:
        torch.default_generator.manual_seed(key)


@functools.cache
def _other_accelerators() -> bool:
    """Whether a device other than the CPU and CUDA has generators ``torch.manual_seed`` seeds (MPS, XPU)."""
    xpu = getattr(torch, "xpu", None)
    return torch.backends.mps.is_available() or (xpu is not None and xpu.is_available())


def _heldout_log_prob(imitator, guide, heldout, config: TrainConfig) -> tuple[float, float, float]:
    """(mean held-out log p, its standard error, the Monte Carlo part of it) over the first ``eval_answers``."""
    questions, answers = heldout
    questions, answers = list(questions[: config.eval_answers]), list(answers[: config.eval_answers])
    records = importance(
        imitator,
        questions,
        answers,
        guide=guide,
        proposal=preferred_proposal(guide),
        num_particles=config.eval_particles,
    )
    summary = summarize(records)
    return summary.log_prob_mean, summary.stderr, summary.mc_stderr


def _collapse_row(imitator, guide, heldout, config: TrainConfig) -> dict[str, Any]:
    questions, answers = list(heldout[0][: config.eval_answers]), list(heldout[1][: config.eval_answers])
    if len(answers) < 2:
        return {}
    diagnostics = collapse_diagnostics(imitator, guide, questions, answers)
    return {
        "kl": diagnostics.kl,
        "mutual_information": diagnostics.mutual_information,
        "active_units": diagnostics.active_units,
        "latent_usage": diagnostics.usage,
        "unused_latents": list(diagnostics.unused),
    }


Objective = Callable[[Any, Any], torch.Tensor]


def _default_objective(imitator: StringProgram, guide: AmortizedGuide | None) -> Objective:
    negative_elbo = elbo_loss(imitator, guide)

    def objective(q_batch, a_batch):
        return negative_elbo(q_batch, a_batch) / len(a_batch)

    return objective


@dataclass
class _Position:
    """Where the run is: the minibatch order and cursor, the loss average, the early-stopping counter."""

    order: torch.Tensor
    cursor: int = 0
    running: float | None = None
    waited: int = 0
    seconds_before: float = 0.0
    best_parameters: dict[str, torch.Tensor] | None = None
    best_seen: float = -math.inf  # the best held-out score so far (the kept one may be a later, close one)
    best_seen_noise: float = 0.0  # its Monte Carlo standard error
    averaged: dict[str, torch.Tensor] | None = (
        None  # the moving average of ``_Run.averaged_names``' parameters
    )


class _Run:
    """One training run's parts: the gradient step, evaluation (with early stopping) and snapshots.

    Every rank builds one; rank 0 alone evaluates, calls the callbacks and decides when to stop. The randomness
    of a step is keyed by (seed, step, slice), and the minibatch order by (seed, step of the reshuffle), so every
    rank knows every minibatch without talking, and a resumed run continues exactly.
    """

    def __init__(
        self,
        imitator,
        guide,
        objective,
        modules,
        config: TrainConfig,
        world: World,
        size: int,
        retrodiction: bool,
        length_keys: torch.Tensor | None = None,
    ):
        # length_keys: one sort key per answer (its length, then its question's), or None: random minibatches
        self.imitator, self.guide, self.objective, self.modules = imitator, guide, objective, modules
        self.retrodiction = retrodiction
        self.config, self.world, self.size = config, world, size
        self.length_keys = length_keys
        self.slices = config.slices if config.slices is not None else world.size
        if self.slices % world.size:
            raise RetroError(
                f"training: {self.slices} slices per minibatch cannot be shared by {world.size} processes"
            )
        if config.batch_size % self.slices:
            raise RetroError(
                f"training: the batch size {config.batch_size} is not divisible into {self.slices} equal slices "
                f"(one or more per process, {world.size} processes)"
            )
        params = list(imitator.parameters()) + (list(guide.parameters()) if guide is not None else [])
        params = [p for p in params if p.requires_grad]  # a frozen base (language models) is not optimized
        self.params = params
        self.flat_grads = _FlatGradients.for_parameters(params, world) if world.size > 1 else None
        self.optimizer = _adam(params, config.learning_rate)
        self.every_parameter = list(
            {id(p): p for m in modules.values() if m is not None for p in m.parameters()}.values()
        )
        # (name, live parameter) pairs that config.average_decay averages: the imitator's and the guide's
        self.averaged_names = trained_parameters(modules)
        self.position = _Position(order=self._shuffled(0), averaged=self._fresh_average())
        self.report = TrainReport()

    def _fresh_average(self) -> dict[str, torch.Tensor] | None:
        if self.config.average_decay is None:
            return None
        return {name: p.detach().clone() for name, p in self.averaged_names}

    # -- minibatches and the gradient step -------------------------------------------------------------------------

    def _shuffled(self, step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(random_key(self.config.seed, "order", step))
        order = torch.randperm(self.size, generator=generator)
        if self.length_keys is None:
            return order
        return _bucketed(
            order, self.length_keys, self.config.batch_size, self.config.length_buckets, generator
        )

    def _minibatch(self, step: int) -> torch.Tensor:
        position, batch = self.position, self.config.batch_size
        if position.cursor + batch > len(position.order):
            position.order, position.cursor = self._shuffled(step), 0
        index = position.order[position.cursor : position.cursor + batch]
        position.cursor = min(position.cursor + batch, len(position.order))  # a batch may exceed the data
        return index

    def _my_slices(self, index: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        per_rank, width = self.slices // self.world.size, len(index) // self.slices
        first = self.world.rank * per_rank
        return [(s, index[s * width : (s + 1) * width]) for s in range(first, first + per_rank)]

    def step(self, step: int, questions, answers, seconds: float = 0.0) -> None:
        """One optimizer step on the next global minibatch: this rank's slices, gradients averaged over all
        (``seconds``: training time so far, which a schedule without a step count follows)."""
        index = self._minibatch(step)
        if self.flat_grads is not None:
            self.flat_grads.zero_and_attach(self.params)
        else:
            self.optimizer.zero_grad(set_to_none=True)
        local_loss = torch.zeros((), dtype=torch.float64)
        for s, part in self._my_slices(index):
            _seed(random_key(self.config.seed, "step", step, s))
            with smoothed_labels(self.config.label_smoothing or 0.0):
                loss = self.objective(questions[part], answers[part])
            if torch.isfinite(loss):
                loss.backward()
            local_loss += loss.detach().double().cpu()
        loss = self._average_gradients(local_loss)
        if not math.isfinite(loss):
            raise RetroError(
                f"training stopped at step {step}: the loss is {loss} "
                "(the best parameters so far and the last checkpoint are kept)"
            )
        rate = learning_rate_at(self.config, step, self._shared_seconds(seconds))
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        self.optimizer.step()
        self._update_average(step)
        finish = getattr(self.objective, "finish_step", None)
        if finish is not None:  # e.g. the adversarial discriminator's own step, on the averaged gradient
            finish(self.average)
        running = self.position.running
        self.position.running = loss if running is None else 0.95 * running + 0.05 * loss

    def _update_average(self, step: int) -> None:
        averaged = self.position.averaged
        if averaged is None:
            return
        decay = min(self.config.average_decay, (1 + step) / (10 + step))
        with torch.no_grad():  # one call for the list: average += (1 - decay) * (live - average)
            torch._foreach_lerp_(
                [averaged[name] for name, _ in self.averaged_names],
                [p.detach() for _, p in self.averaged_names],
                1.0 - decay,
            )

    def _swap_average(self) -> None:
        """Exchange the live parameters and their moving average (twice: back as they were)."""
        averaged = self.position.averaged
        if averaged is None:
            return
        with torch.no_grad():
            for name, p in self.averaged_names:
                live = p.detach().clone()
                p.copy_(averaged[name])
                averaged[name].copy_(live)

    def _shared_seconds(self, seconds: float) -> float:
        """Rank 0's clock when the schedule follows the time: every rank must take the same step size."""
        if self.config.steps is not None or self.config.lr_schedule == "constant" or self.world.size == 1:
            return seconds
        shared = torch.tensor([seconds], dtype=torch.float64)
        self.world.broadcast_([shared])
        return float(shared)

    def average(self, tensors: list[torch.Tensor]) -> None:
        """Replace each tensor by its mean over the step's slices (summed over ranks, divided by the slices)."""
        self.world.sum_(tensors)
        torch._foreach_div_(tensors, float(self.slices))  # one call for the list (the same numbers as div_)

    def _average_gradients(self, local_loss: torch.Tensor) -> float:
        if self.flat_grads is not None:
            return self.flat_grads.average(self.world, local_loss, self.slices)
        grads = [p.grad for p in self.params if p.grad is not None]
        if self.world.size > 1 and len(grads) != len(self.params):  # every rank must send the same shapes
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            grads = [p.grad for p in self.params]
        loss = local_loss.reshape(1)
        self.average(grads + [loss])
        return loss.item()

    # -- evaluation and early stopping -----------------------------------------------------------------------------

    def evaluate(self, step: int, heldout, clock: Callable[[], float], on_evaluate, on_improve) -> None:
        """Check the parameters agree across ranks; rank 0 scores held-out data and keeps the best parameters."""
        if not self.world.identical(self.every_parameter):
            raise RetroError(f"training: the parameters differ between processes at step {step}")
        if not self.world.is_main:
            return
        _set_training(self.modules, False)  # dropout off: held-out scores are of the model, not a thinned one
        _seed(random_key(self.config.seed, "evaluate", step))
        self._swap_average()  # the averaged parameters are scored and kept
        try:
            row = self._evaluation_row(step, heldout, round(clock(), 2))
            self.report.history.append(row)
            if on_evaluate is not None:
                on_evaluate(row)
            self._keep_if_best(step, row, on_improve)
        finally:
            self._swap_average()
        _set_training(self.modules, True)

    def _evaluation_row(self, step: int, heldout, seconds: float) -> dict[str, Any]:
        row: dict[str, Any] = {"step": step, "seconds": seconds, "loss": self.position.running}
        row.update(getattr(self.objective, "last", {}))
        if heldout is not None:
            row["heldout_log_prob"], row["heldout_stderr"], row["heldout_mc_stderr"] = _heldout_log_prob(
                self.imitator, self.guide, heldout, self.config
            )
            if self.guide is not None and self.guide.sites:  # posterior collapse, visible as it happens
                row.update(_collapse_row(self.imitator, self.guide, heldout, self.config))
        return row

    def _keep_if_best(self, step: int, row: dict[str, Any], on_improve) -> None:
        """Keep the parameters just evaluated unless their held-out log p is below the best seen by more than
        :data:`KEEP_WITHIN` Monte Carlo standard errors of the difference (always, for an objective not judged by
        held-out log p); an evaluation without a new best is one more wait.

        The evaluations score the same held-out answers, so the spread across answers cancels and only the
        estimates' Monte Carlo error separates two of them: within it, the later parameters (more training, a
        smaller step size under a decaying schedule) are the better bet. Exact scores (no Monte Carlo error) keep
        only a strictly better point."""
        position, report = self.position, self.report
        running = position.running
        score = row.get("heldout_log_prob", -(running if running is not None else math.inf))
        noise = row.get("heldout_mc_stderr", 0.0)
        margin = KEEP_WITHIN * math.hypot(noise, position.best_seen_noise)
        if position.best_parameters is None or score > position.best_seen - margin or not self.retrodiction:
            report.best_heldout, report.best_step = score, step
            position.best_parameters = _parameters(self.modules)
            if on_improve is not None:
                on_improve(report)
        if score > position.best_seen:
            position.best_seen, position.best_seen_noise, position.waited = score, noise, 0
        else:
            position.waited += 1

    def patience_spent(self) -> bool:
        patience = self.config.patience
        return patience is not None and self.retrodiction and self.position.waited >= patience

    # -- snapshots -------------------------------------------------------------------------------------------------

    def snapshot(self, step: int, seconds: float) -> TrainState:
        position, report = self.position, self.report
        return TrainState(
            step=step,
            cursor=position.cursor,
            order=position.order,
            running=position.running,
            history=list(report.history),
            best_heldout=report.best_heldout,
            best_step=report.best_step,
            evaluations_since_best=position.waited,
            seconds=seconds,
            rng=torch.get_rng_state(),
            parameters=_parameters(self.modules),
            best_parameters=position.best_parameters
            if position.best_parameters is not None
            else _parameters(self.modules),
            optimizer=copy.deepcopy(self.optimizer.state_dict()),  # the live state changes in place
            averaged_parameters=(
                {k: v.clone() for k, v in position.averaged.items()}
                if position.averaged is not None
                else None
            ),
            cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        )

    def restore(self, state: TrainState) -> int:
        """Continue from ``state``; returns the first step to run."""
        _load_parameters(self.modules, state.parameters)
        self.optimizer.load_state_dict(state.optimizer)
        _set_adam_implementation(self.optimizer)  # the saved state names the implementation of its time
        self.position = _Position(
            order=state.order,
            cursor=state.cursor,
            running=state.running,
            waited=state.evaluations_since_best,
            seconds_before=state.seconds,
            best_parameters=state.best_parameters,
            **_best_seen(state),
            # a state saved without an average (or by a run that did not average) starts one from here
            averaged=(
                {k: v.clone() for k, v in state.averaged_parameters.items()}
                if state.averaged_parameters is not None and self.config.average_decay is not None
                else self._fresh_average()
            ),
        )
        report = self.report
        report.history, report.best_heldout, report.best_step = (
            list(state.history),
            state.best_heldout,
            state.best_step,
        )
        return state.step + 1

    def finish(self) -> None:
        """Every rank ends with rank 0's kept parameters (the best ones, for a retrodiction objective)."""
        if self.world.is_main and self.position.best_parameters is not None:
            _load_parameters(self.modules, self.position.best_parameters)
        self.world.broadcast_(self.every_parameter_and_buffer())

    def every_parameter_and_buffer(self) -> list[torch.Tensor]:
        return [t for m in self.modules.values() if m is not None for t in m.state_dict().values()]


def _adam(params: list[torch.Tensor], learning_rate: float) -> torch.optim.Adam:
    """Adam over ``params``, in one fused kernel call per step where PyTorch has one for their devices (CPU and
    CUDA), else ``foreach`` (one call per operation for the whole list). The step's state is the same
    (``step``, ``exp_avg``, ``exp_avg_sq`` per tensor) whichever is used, so a saved training state resumes
    under either; the numbers agree to the last bit or so (the kernel rounds in its own order). On a CPU the fused
    step costs about a quarter of the ``foreach`` one (0.5 vs 2.1 ms for the 42 tensors of a ``latent``
    imitator of width 128 and its guide), and it is paid once per step on every process, whatever the batch."""
    if _fusable(params):
        return torch.optim.Adam(params, lr=learning_rate, fused=True)
    return torch.optim.Adam(params, lr=learning_rate, foreach=True)


def _fusable(params: list[torch.Tensor]) -> bool:
    return bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in _FUSED_ADAM_DTYPES for p in params
    )


def _set_adam_implementation(optimizer: torch.optim.Adam) -> None:
    """After ``load_state_dict``: the implementation :func:`_adam` chose, and ``step`` where the fused kernel wants
    it (a float32 scalar on the parameter's device; a state saved by the ``foreach`` step may hold it in
    float64)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    fused = _fusable(params)
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = (True, None) if fused else (None, True)
    if fused:
        for p in params:
            state = optimizer.state.get(p)
            if state and "step" in state:
                state["step"] = torch.as_tensor(state["step"], dtype=torch.float32, device=p.device)


_FUSED_ADAM_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


class _FlatGradients:
    """The gradients of a run on several processes, as views of one flat tensor, all-reduced in place in the
    parameters' dtype (one collective for all of them, and one for the float64 loss), instead of concatenating
    and splitting every parameter's gradient at every step. For two ranks the float32 sums are those of the
    float64 path that :meth:`_Run.average` takes, rounded to float32, bit for bit; for more, they differ by the
    order of float32 sums."""

    def __init__(self, params: list[torch.Tensor]):
        first = params[0]
        self.flat = torch.zeros(sum(p.numel() for p in params), dtype=first.dtype, device=first.device)
        self.views = [
            part.view(p.shape) for p, part in zip(params, self.flat.split([p.numel() for p in params]))
        ]

    @classmethod
    def for_parameters(cls, params: list[torch.Tensor], world: World) -> _FlatGradients | None:
        """One, or ``None`` where the parameters do not share a dtype and the world's device (the general path
        serves)."""
        if not params or len({(p.dtype, p.device) for p in params}) > 1 or params[0].device != world.device:
            return None
        return cls(params)

    def zero_and_attach(self, params: list[torch.Tensor]) -> None:
        """Zero the gradients, every parameter's ``grad`` a view of the flat tensor (backward adds into it; a
        parameter the loss does not reach keeps a zero gradient, as every rank must send the same shapes)."""
        self.flat.zero_()
        for p, view in zip(params, self.views):
            if p.grad is not view:  # an objective's own optimizer may have replaced or dropped it
                p.grad = view

    def average(self, world: World, local_loss: torch.Tensor, slices: int) -> float:
        """Average the gradients (in place) and the loss over the step's slices on every rank; the mean loss."""
        loss = local_loss.reshape(1).to(world.device, torch.float64)
        world.sum_each_([self.flat, loss])
        self.flat.div_(float(slices))
        return loss.item() / slices


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
    world: World | None = None,
) -> TrainReport:
    """Train ``imitator`` (and ``guide``) on (question, answer) pairs; return the report.

    ``objective`` (default: minus the ELBO per answer) maps a minibatch ``(questions, answers)`` to the loss; an
    :class:`~retro.inference.adversarial.AdversarialObjective` trains adversarially (or mixed). With a retrodiction
    objective (the default, or one whose ``retrodiction`` attribute is true: IWAE, the collapse-aware ELBO), the
    kept parameters are restored at the end: the last evaluated ones whose held-out estimated log p is within
    :data:`KEEP_WITHIN` Monte Carlo standard errors of the best (or the last ones, without ``heldout``);
    ``on_improve(report)`` is called whenever the kept parameters change (e.g. to write a checkpoint), and
    ``config.patience`` stops the run after that many evaluations without a new best. Another objective is not
    scored by held-out log p, so every evaluation counts as the new "best" (the last parameters are kept, and
    ``on_improve`` writes every evaluation). Evaluation rows also carry what the objective reports (e.g. the
    adversarial reward) and are passed to ``on_evaluate`` as they come (e.g. to append them to a log). An
    objective may define ``finish_step(average)``: called after each optimizer step with a function that averages
    tensors over the step's slices and processes (the adversarial objective steps its discriminator there).

    ``on_checkpoint(state)`` receives a :class:`~retro.inference.train_state.TrainState` every
    ``config.checkpoint_every`` steps and at the end; ``resume`` continues from such a state exactly (same
    minibatches and random draws as a run that never stopped). A non-finite loss stops training with a
    :class:`~retro.errors.RetroError` before any parameter is changed by it.

    Data-parallel (``world``, default the one this process joined, see :mod:`retro.distributed`): every rank calls
    ``train`` with the same data and settings; each takes its slices of every minibatch, gradients are averaged,
    so parameters stay identical (checked at each evaluation). Rank 0 alone evaluates, calls the callbacks and
    decides when ``minutes`` are spent; every rank stops at the same step and ends with rank 0's parameters. The
    other ranks' reports have no history.

    Steps run in training mode (dropout on), evaluations in eval mode; the modules are left in eval mode.
    """
    if len(questions) != len(answers) or not answers:
        raise RetroError(f"need as many questions as answers (>0), got {len(questions)} and {len(answers)}")
    world = world if world is not None else current_world()
    torch.manual_seed(config.seed)
    q_all, a_all = imitator.encode_questions(questions), imitator.encode_answers(answers)
    modules = {"imitator": imitator, "guide": guide}
    if isinstance(objective, torch.nn.Module):
        modules["objective"] = objective  # e.g. a discriminator
    # Retrodiction objectives (the default ELBO, IWAE, the collapse-aware ELBO) are judged by held-out log p: the
    # best parameters are kept and early stopping applies. Others (adversarial) keep the last parameters.
    retrodiction = objective is None or getattr(objective, "retrodiction", False)
    if config.label_smoothing and not retrodiction:
        raise RetroError("training: label_smoothing is for retrodiction objectives (ELBO, IWAE)")
    run = _Run(
        imitator,
        guide,
        objective if objective is not None else _default_objective(imitator, guide),
        modules,
        config,
        world,
        len(answers),
        retrodiction=retrodiction,
        length_keys=(
            a_all.lengths * (int(q_all.lengths.max()) + 1) + q_all.lengths if config.length_buckets else None
        ),
    )
    first_step = run.restore(resume) if resume is not None else 1
    start = time.monotonic()
    # Without steps, minutes is the whole run's budget (resumed runs included); with steps, a cap on this call.
    spent = run.position.seconds_before if config.steps is None else 0.0
    deadline = start + 60 * config.minutes - spent if config.minutes else math.inf

    def clock() -> float:
        return run.position.seconds_before + time.monotonic() - start

    bar = tqdm(
        total=config.steps,
        initial=first_step - 1,
        desc="train",
        unit="step",
        disable=not (config.progress and world.is_main),
    )
    step = first_step - 1
    try:  # whatever stops the run (an error, Ctrl-C), the modules end in eval mode: no dropout when scored
        _set_training(modules, True)
        steps = (
            range(first_step, config.steps + 1) if config.steps is not None else itertools.count(first_step)
        )
        for step in steps:
            run.step(step, q_all, a_all, clock())
            bar.update(1)
            if step % config.eval_every == 0:
                run.evaluate(step, heldout, clock, on_evaluate, on_improve)
                _show(bar, run)
            if (
                world.is_main
                and on_checkpoint
                and config.checkpoint_every
                and step % config.checkpoint_every == 0
            ):
                on_checkpoint(run.snapshot(step, clock()))
            patience = run.patience_spent()
            if _may_stop(config, step, first_step) and world.decide(patience or time.monotonic() > deadline):
                run.report.stopped_early = world.decide(patience)
                break
        last_evaluated = bool(run.report.history) and run.report.history[-1]["step"] == step
        if not world.decide(last_evaluated):
            run.evaluate(step, heldout, clock, on_evaluate, on_improve)
        if world.is_main and on_checkpoint is not None:
            on_checkpoint(run.snapshot(step, clock()))
    finally:
        bar.close()
        _set_training(modules, False)
    run.finish()
    run.report.steps, run.report.seconds = step, clock()
    return run.report


def _best_seen(state: TrainState) -> dict[str, float]:
    """The best held-out score of a saved run and its Monte Carlo standard error (0 where a row has none)."""
    rows = [row for row in state.history if isinstance(row.get("heldout_log_prob"), (int, float))]
    if not rows:
        return {"best_seen": state.best_heldout, "best_seen_noise": 0.0}
    best = max(rows, key=lambda row: row["heldout_log_prob"])
    return {"best_seen": best["heldout_log_prob"], "best_seen_noise": best.get("heldout_mc_stderr", 0.0)}


def _bucketed(
    order: torch.Tensor, keys: torch.Tensor, batch: int, pool_batches: int, generator: torch.Generator
) -> torch.Tensor:
    """``order`` regrouped into minibatches of similar ``keys``: each pool of ``pool_batches`` minibatches sorted
    by key, the full minibatches shuffled; the answers that fill no minibatch stay at the end (a permutation still)."""
    pool = batch * pool_batches
    pools = [part[torch.sort(keys[part], stable=True).indices] for part in order.split(pool)]
    sorted_order = torch.cat(pools)
    full = len(order) // batch * batch
    minibatches = sorted_order[:full].view(-1, batch)
    shuffled = minibatches[torch.randperm(len(minibatches), generator=generator)].reshape(-1)
    return torch.cat([shuffled, sorted_order[full:]])


def _may_stop(config: TrainConfig, step: int, first_step: int) -> bool:
    """Whether rank 0 may decide to stop after ``step``, so every rank must ask it (a collective): with a time
    budget, at every step; with patience, where an evaluation may have spent it (and at the first step, in case
    a resumed state had spent it); else never before the last step (every rank knows that one)."""
    if config.minutes is not None:
        return True
    return config.patience is not None and (step % config.eval_every == 0 or step == first_step)


def _show(bar, run: _Run) -> None:
    if run.report.history:
        running, row = run.position.running, run.report.history[-1]
        bar.set_postfix(
            loss=f"{running:.3f}" if running is not None else "-",
            heldout=f"{row.get('heldout_log_prob', float('nan')):.3f}",
        )


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
