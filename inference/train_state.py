"""Everything :func:`~retro.inference.train.train` needs to continue a run exactly, and its checkpoint IO.

A :class:`TrainState` holds the current and the best parameters (imitator, guide, objective), the optimizer's
state, the step, the minibatch order and position, the random number generator's state, the evaluation history
and the early-stopping counters. Resuming from it continues the run as if it had never stopped: the same
minibatches, the same random draws (tested). An objective's own optimizers (the adversarial discriminator's) are
not part of it: the objective's weights are restored, its optimizer state starts afresh. It is written with :func:`retro.checkpoint.write_checkpoint`
(safetensors + JSON, crash-consistent: a process killed at any moment leaves the previous state or the new one).

A saved state is untrusted input: :func:`load_train_state` checks every field's type and range, and
:func:`check_resumable` checks it against the run about to continue (parameter names, shapes and dtypes, the
optimizer's state, the minibatch order, the random state), so a malformed state is a one-line
:class:`~retro.checkpoint.CheckpointError`, never a traceback from deep inside PyTorch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from retro.checkpoint import CheckpointError, read_checkpoint, write_checkpoint

__all__ = [
    "TrainState",
    "save_train_state",
    "load_train_state",
    "check_resumable",
    "trained_parameters",
    "STATE_FORMAT",
]

STATE_FORMAT = "retro-train-state/1"


@dataclass
class TrainState:
    step: int
    cursor: int
    order: torch.Tensor
    running: float | None
    history: list[dict[str, Any]]
    best_heldout: float
    best_step: int
    evaluations_since_best: int
    seconds: float
    rng: torch.Tensor
    parameters: dict[str, torch.Tensor]  # "imitator.*", "guide.*", "objective.*"
    best_parameters: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # torch.optim state_dict
    cuda_rng: list[torch.Tensor] = field(default_factory=list)
    averaged_parameters: dict[str, torch.Tensor] | None = None  # TrainConfig.average_decay's moving average


def trained_parameters(modules: dict[str, torch.nn.Module | None]) -> list[tuple[str, torch.Tensor]]:
    """``("imitator.NAME" or "guide.NAME", parameter)`` for every parameter training changes (a frozen language-model
    base's are not): what the optimizer holds, and what ``TrainConfig.average_decay`` averages."""
    return [
        (f"{name}.{key}", p)
        for name in ("imitator", "guide")
        if modules.get(name) is not None
        for key, p in modules[name].named_parameters()
        if p.requires_grad
    ]


def _optimizer_to_checkpoint(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, values = {}, {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                values[f"{index}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "values": values}


def _index(text: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise ValueError(f"optimizer entry index {text!r} is not a small non-negative integer")
    return int(text)


def _optimizer_from_checkpoint(tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(config, dict) or not isinstance(config.get("values"), dict):
        raise ValueError("the optimizer entry must be an object with 'param_groups' and 'values'")
    groups = config.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ValueError("the optimizer's param_groups must be a list of objects")
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = (name.split(".", 2) + ["", ""])[:3]
            state.setdefault(_index(index), {})[key] = value
    for name, value in config["values"].items():
        index, _, key = name.partition(".")
        state.setdefault(_index(index), {})[key] = value
    for group in groups:
        if "betas" in group and not (isinstance(group["betas"], list) and len(group["betas"]) == 2):
            raise ValueError(f"the optimizer's betas must be a pair of numbers, got {group['betas']!r}")
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in groups]
    return {"state": state, "param_groups": groups}


def _integer(config: dict[str, Any], key: str) -> int:
    value = config[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key} must be an integer >= 0, got {value!r}")
    return value


def _number(value: Any, key: str, allow_minus_infinity: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (math.isfinite(value) or (allow_minus_infinity and value == -math.inf)):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    return float(value)


def _tensor(tensors: dict[str, torch.Tensor], key: str, dtype: torch.dtype | None, what: str) -> torch.Tensor:
    value = tensors[key]
    if value.dim() != 1 or (dtype is not None and value.dtype != dtype) or value.dtype.is_floating_point:
        raise ValueError(f"tensor {key!r} must be {what}, got {tuple(value.shape)} {value.dtype}")
    return value


def save_train_state(directory: str | os.PathLike, state: TrainState, info: dict[str, Any]) -> None:
    """Write ``state`` (and ``info``: what is needed to rebuild the run, e.g. the command's settings)."""
    tensors = {f"current.{k}": v for k, v in state.parameters.items()}
    tensors.update({f"best.{k}": v for k, v in state.best_parameters.items()})
    tensors.update({f"average.{k}": v for k, v in (state.averaged_parameters or {}).items()})
    optimizer_tensors, optimizer_config = _optimizer_to_checkpoint(state.optimizer)
    tensors.update(optimizer_tensors)
    tensors["order"], tensors["rng"] = state.order, state.rng
    tensors.update({f"cuda_rng.{i}": r for i, r in enumerate(state.cuda_rng)})
    config = {
        "format": STATE_FORMAT,
        "step": state.step,
        "cursor": state.cursor,
        "running": state.running,
        "history": state.history,
        "best_heldout": state.best_heldout,
        "best_step": state.best_step,
        "evaluations_since_best": state.evaluations_since_best,
        "seconds": state.seconds,
        "optimizer": optimizer_config,
        "info": info,
    }
    write_checkpoint(directory, tensors, config)


def load_train_state(directory: str | os.PathLike) -> tuple[TrainState, dict[str, Any]]:
    """``(state, info)`` written by :func:`save_train_state`; a bad checkpoint is a one-line error."""
    tensors, config = read_checkpoint(directory)
    if config.get("format") != STATE_FORMAT:
        raise CheckpointError(
            f"{str(directory)!r} is not a retro training state (format {config.get('format')!r}, "
            f"expected {STATE_FORMAT!r})"
        )
    try:
        history = config["history"]
        if not isinstance(history, list) or not all(
            isinstance(row, dict) and isinstance(row.get("step"), int) for row in history
        ):
            raise ValueError("history must be a list of objects with an integer 'step'")
        running = config["running"]
        state = TrainState(
            step=_integer(config, "step"),
            cursor=_integer(config, "cursor"),
            order=_tensor(tensors, "order", None, "a vector of indices"),
            running=None if running is None else _number(running, "running"),
            history=list(history),
            best_heldout=_number(config["best_heldout"], "best_heldout", allow_minus_infinity=True),
            best_step=_integer(config, "best_step"),
            evaluations_since_best=_integer(config, "evaluations_since_best"),
            seconds=_number(config["seconds"], "seconds"),
            rng=_tensor(tensors, "rng", torch.uint8, "a byte vector"),
            parameters={k[len("current.") :]: v for k, v in tensors.items() if k.startswith("current.")},
            best_parameters={k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")},
            averaged_parameters={
                k[len("average.") :]: v for k, v in tensors.items() if k.startswith("average.")
            }
            or None,
            optimizer=_optimizer_from_checkpoint(tensors, config["optimizer"]),
            cuda_rng=[
                tensors[k]
                for k in sorted(
                    (t for t in tensors if t.startswith("cuda_rng.")),
                    key=lambda t: _index(t[len("cuda_rng.") :]),
                )
            ],
        )
    except KeyError as e:
        raise CheckpointError(f"training state {str(directory)!r} is incomplete (missing {e})") from None
    except (TypeError, ValueError, AttributeError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"training state {str(directory)!r} is malformed ({message})") from None
    info = config.get("info", {})
    if not isinstance(info, dict):
        raise CheckpointError(f"training state {str(directory)!r} is malformed (info must be an object)")
    return state, info


def _check_tensors(saved: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str) -> None:
    missing, extra = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
    if missing or extra:
        raise ValueError(f"{what} do not match the run: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, value in expected.items():
        if saved[name].shape != value.shape or saved[name].dtype != value.dtype:
            raise ValueError(
                f"{what}: {name!r} is {tuple(saved[name].shape)} {saved[name].dtype}, the run has "
                f"{tuple(value.shape)} {value.dtype}"
            )


def _check_optimizer(saved: dict[str, Any], parameters: list[torch.Tensor]) -> None:
    fresh = torch.optim.Adam(parameters).state_dict()["param_groups"]
    groups = saved["param_groups"]
    if len(groups) != len(fresh):
        raise ValueError(f"the optimizer has {len(groups)} parameter groups, the run {len(fresh)}")
    for group, reference in zip(groups, fresh):
        if set(group) != set(reference) or group["params"] != reference["params"]:
            raise ValueError("the optimizer's parameter groups do not match the run")
        for key, value in group.items():
            expected = reference[key]
            if key == "params":
                continue
            if isinstance(expected, tuple):
                if not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1 for v in value
                ):
                    raise ValueError(f"the optimizer's {key} must be numbers in [0, 1), got {value!r}")
            elif isinstance(expected, bool) or expected is None:
                if value is not expected and not (expected is None and isinstance(value, bool)):
                    raise ValueError(f"the optimizer's {key} must be {expected!r}, got {value!r}")
            elif not (
                isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < math.inf
            ):
                raise ValueError(f"the optimizer's {key} must be a finite number >= 0, got {value!r}")
    for index, entries in saved["state"].items():
        if index >= len(parameters):
            raise ValueError(f"the optimizer has state for parameter {index}; the run has {len(parameters)}")
        for key, value in entries.items():
            if key == "step":
                ok = torch.is_tensor(value) and value.numel() == 1 and value.dtype.is_floating_point
            elif key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                ok = (
                    torch.is_tensor(value)
                    and value.shape == parameters[index].shape
                    and value.dtype.is_floating_point
                )
            else:
                ok = False
            if not ok:
                raise ValueError(f"the optimizer's {key!r} for parameter {index} does not fit the run")


def check_resumable(
    directory: str | os.PathLike,
    state: TrainState,
    modules: dict[str, torch.nn.Module | None],
    num_answers: int,
) -> None:
    """Check that ``state`` (read from ``directory``) continues a run of ``modules`` on ``num_answers`` answers.

    ``modules`` are those :func:`~retro.inference.train.train` saves (``"imitator"``, ``"guide"``, and
    ``"objective"`` when it has parameters); its optimizer holds the imitator's and the guide's parameters.

    Raises:
        CheckpointError: in one line, the first thing that does not fit.
    """
    expected = {
        f"{name}.{key}": value
        for name, module in modules.items()
        if module is not None
        for key, value in module.state_dict().items()
    }
    parameters = [
        p
        for name in ("imitator", "guide")
        if modules.get(name) is not None
        for p in modules[name].parameters()
    ]
    try:
        _check_tensors(state.parameters, expected, "the saved parameters")
        _check_tensors(state.best_parameters, expected, "the saved best parameters")
        if state.averaged_parameters is not None:
            averaged = dict(trained_parameters(modules))
            _check_tensors(state.averaged_parameters, averaged, "the saved averaged parameters")
        if len(state.order) != num_answers or not torch.equal(
            torch.sort(state.order).values, torch.arange(num_answers)
        ):
            raise ValueError(
                f"the minibatch order is not a permutation of the {num_answers} training answers"
            )
        if state.cursor > num_answers:
            raise ValueError(f"the minibatch position {state.cursor} is past the {num_answers} answers")
        if state.rng.shape != torch.get_rng_state().shape:
            raise ValueError(
                f"the random state has {state.rng.numel()} bytes, not {torch.get_rng_state().numel()}"
            )
        current = torch.get_rng_state()
        try:
            torch.set_rng_state(state.rng)
        except RuntimeError:
            raise ValueError("the random state is not a valid generator state") from None
        finally:
            torch.set_rng_state(current)
        if any(not torch.is_tensor(r) or r.dtype != torch.uint8 or r.dim() != 1 for r in state.cuda_rng):
            raise ValueError("a CUDA random state is not a byte vector")
        _check_optimizer(state.optimizer, parameters)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"training state {str(directory)!r} does not fit this run: {e}") from None
