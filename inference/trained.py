"""Save and load a trained imitator together with its guide (safetensors + JSON, never pickle)."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import torch

from retro.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from retro.inference.ensemble_guide import GUIDE_KIND, EnsembleGuide
from retro.inference.guides import AmortizedGuide
from retro.memory import checked_build
from retro.models import HOW_TO_REGISTER, IMITATORS, Ensemble, Imitator, imitator_from_config, needs_base

__all__ = ["TrainedImitator", "save_trained", "load_trained", "guide_from_config"]

FORMAT = "retro-trained-imitator/1"


class TrainedImitator(NamedTuple):
    imitator: Imitator
    guide: AmortizedGuide | EnsembleGuide | None
    info: dict[str, Any]


def guide_from_config(imitator: Imitator, config: dict[str, Any]) -> AmortizedGuide | EnsembleGuide:
    """An (untrained) guide for ``imitator`` from its saved config: an ensemble's guide or an amortized one."""
    if isinstance(config, dict) and config.get("kind") == GUIDE_KIND:
        return EnsembleGuide.from_config(imitator, config)
    return AmortizedGuide.from_config(imitator, config)


def save_trained(
    directory: str | os.PathLike,
    imitator: Imitator,
    guide: AmortizedGuide | EnsembleGuide | None = None,
    info: dict[str, Any] | None = None,
) -> None:
    """Write ``imitator`` (and ``guide``) with training ``info`` (JSON-able) into ``directory``."""
    tensors = {f"imitator.{k}": v for k, v in imitator.trained_state().items()}
    if guide is not None:
        tensors.update({f"guide.{k}": v for k, v in guide.state_dict().items()})
    config = {
        "format": FORMAT,
        "imitator": imitator.config(),
        "guide": guide.config() if guide is not None else None,
        "info": info or {},
    }
    write_checkpoint(directory, tensors, config)


def _part(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _imitator_names(config: Any) -> list[str]:
    """The imitator names an imitator config holds: its own, and an ensemble's members'."""
    if not isinstance(config, dict):
        return []
    members = config.get("members") if config.get("imitator") == Ensemble.name else None
    inner = [m.get("imitator") for m in members if isinstance(m, dict)] if isinstance(members, list) else []
    return [n for n in [config.get("imitator"), *inner] if isinstance(n, str)]


def load_trained(
    directory: str | os.PathLike, device: str | torch.device = "cpu", base: Any = None
) -> TrainedImitator:
    """Rebuild the imitator and guide saved by :func:`save_trained`.

    ``base``: the base model directory (or :class:`retro.lm.LMBase`) of a language-model imitator. Its checkpoint
    holds only what was trained and the base's weights hash, never a path: the base is given again, and one whose
    hash differs is a one-line error."""
    tensors, config = read_checkpoint(directory)
    if config.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {str(directory)!r} is not a retro trained imitator "
            f"(format {config.get('format')!r}, expected {FORMAT!r})"
        )
    name = config.get("imitator", {}).get("imitator") if isinstance(config.get("imitator"), dict) else None
    for named in _imitator_names(
        config.get("imitator")
    ):  # a checkpoint names imitators, never code to import
        if named not in IMITATORS:
            raise CheckpointError(
                f"checkpoint {str(directory)!r} holds imitator {named!r}, which is not registered: "
                + HOW_TO_REGISTER
            )
    if needs_base(name):
        if base is None:
            raise CheckpointError(
                f"checkpoint {str(directory)!r} holds a language-model imitator trained on a base model: give the "
                "base model directory again (--base DIR, or base=... in Python)"
            )
        imitator = imitator_from_config(config["imitator"], base)  # a wrong base is a one-line BaseModelError
    else:
        imitator = None
    try:
        if imitator is None:
            imitator = imitator_from_config(config["imitator"])
        imitator.load_trained_state(_part(tensors, "imitator."))
        guide = None
        if config.get("guide") is not None:
            guide = checked_build(lambda: guide_from_config(imitator, config["guide"]), "the guide")
            guide.load_state_dict(_part(tensors, "guide."))
    # Whatever a config.json holds (wrong types, shapes, sizes) is reported in one line; construction from a
    # checked config raises nothing else.
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RuntimeError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"checkpoint {str(directory)!r} does not match its config: {message}") from None
    imitator.to(device).eval()  # eval mode: no dropout when it is scored or sampled
    if guide is not None:
        guide.to(device).eval()
    return TrainedImitator(imitator, guide, config.get("info", {}))
