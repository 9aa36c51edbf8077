"""Everything :func:`~retro.inference.train.train` needs to continue a run exactly, and its checkpoint IO.

A :class:`TrainState` holds the current and the best parameters (imitator, guide, objective), the optimizer's
state, the step, the minibatch order and position, the random number generator's state, the evaluation history
and the early-stopping counters. Resuming from it continues the run as if it had never stopped: the same
minibatches, the same random draws (tested). An objective's own optimizers (the adversarial discriminator's) are
not part of it: the objective's weights are restored, its optimizer state starts afresh. It is written with :func:`retro.checkpoint.write_checkpoint`
(safetensors + JSON, crash-consistent: a process killed at any moment leaves the previous state or the new one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from retro.checkpoint import CheckpointError, read_checkpoint, write_checkpoint

__all__ = ["TrainState", "save_train_state", "load_train_state", "STATE_FORMAT"]

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


def _optimizer_to_checkpoint(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, values = {}, {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                values[f"{index}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "values": values}


def _optimizer_from_checkpoint(tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in config["values"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in config["param_groups"]]
    return {"state": state, "param_groups": groups}


def save_train_state(directory: str | os.PathLike, state: TrainState, info: dict[str, Any]) -> None:
    """Write ``state`` (and ``info``: what is needed to rebuild the run, e.g. the command's settings)."""
    tensors = {f"current.{k}": v for k, v in state.parameters.items()}
    tensors.update({f"best.{k}": v for k, v in state.best_parameters.items()})
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
        state = TrainState(
            step=int(config["step"]),
            cursor=int(config["cursor"]),
            order=tensors["order"],
            running=config["running"],
            history=list(config["history"]),
            best_heldout=float(config["best_heldout"]),
            best_step=int(config["best_step"]),
            evaluations_since_best=int(config["evaluations_since_best"]),
            seconds=float(config["seconds"]),
            rng=tensors["rng"],
            parameters={k[len("current.") :]: v for k, v in tensors.items() if k.startswith("current.")},
            best_parameters={k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")},
            optimizer=_optimizer_from_checkpoint(tensors, config["optimizer"]),
            cuda_rng=[
                tensors[k]
                for k in sorted((t for t in tensors if t.startswith("cuda_rng.")), key=lambda t: int(t[9:]))
            ],
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"training state {str(directory)!r} is incomplete ({e})") from None
    return state, config.get("info", {})
