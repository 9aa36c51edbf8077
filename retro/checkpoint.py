"""Checkpoint IO: tensors in safetensors, configuration in JSON. Loading never unpickles.

A checkpoint is a directory holding ``weights.safetensors`` and ``config.json``. Both are written to temporary
files and renamed into place, so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from retro.errors import RetroError

__all__ = ["write_checkpoint", "read_checkpoint", "CheckpointError", "WEIGHTS_FILE", "CONFIG_FILE"]

WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(RetroError):
    """A checkpoint is missing, truncated or corrupt."""


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_checkpoint(
    directory: str | os.PathLike, tensors: dict[str, torch.Tensor], config: dict[str, Any]
) -> None:
    """Write ``tensors`` and ``config`` into ``directory`` (created if needed), each file atomically."""
    text = json.dumps(config, indent=2, sort_keys=True)  # fails before anything on disk is touched
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    _atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp))
    _atomic_write(directory / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_checkpoint(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`write_checkpoint`; every failure is a one-line :class:`CheckpointError`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"no checkpoint directory at {str(directory)!r}")
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"checkpoint {str(directory)!r} is incomplete: {path.name} is missing")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {str(directory)!r}: {CONFIG_FILE} is corrupt ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {str(directory)!r}: {CONFIG_FILE} does not hold a JSON object")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"checkpoint {str(directory)!r}: {WEIGHTS_FILE} is corrupt ({message})"
        ) from None
    return tensors, config
