"""Checkpoint IO: tensors in safetensors, configuration in JSON. Loading never unpickles.

A checkpoint is a directory holding ``config.json`` and the weights file it names (``weights-<id>.safetensors``;
checkpoints from before that scheme hold ``weights.safetensors``). Writing puts the new weights under a fresh name,
then atomically replaces ``config.json`` (temporary file + rename), then deletes the old weights. A process killed
at any moment therefore leaves a consistent checkpoint, the new one or the previous one, never a mix.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from retro.errors import RetroError

__all__ = [
    "write_checkpoint",
    "read_checkpoint",
    "weights_path",
    "CheckpointError",
    "WEIGHTS_FILE",
    "CONFIG_FILE",
]

WEIGHTS_FILE = "weights.safetensors"  # the name used before config.json named its weights file
CONFIG_FILE = "config.json"
WEIGHTS_KEY = "weights_file"  # the config entry naming the weights file


class CheckpointError(RetroError):
    """A checkpoint is missing, truncated or corrupt."""


def _atomic_write(path: Path, write) -> None:
    """``write(tmp)``, flushed to disk, then renamed to ``path`` (and the rename itself flushed)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_checkpoint(
    directory: str | os.PathLike, tensors: dict[str, torch.Tensor], config: dict[str, Any]
) -> None:
    """Write ``tensors`` and ``config`` into ``directory`` (created if needed), crash-consistently."""
    weights_name = f"weights-{uuid.uuid4().hex[:12]}.safetensors"
    text = json.dumps(
        {**config, WEIGHTS_KEY: weights_name}, indent=2, sort_keys=True
    )  # fails before any write
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    _atomic_write(directory / weights_name, lambda tmp: save_file(tensors, tmp))
    _atomic_write(directory / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    for old in [
        *directory.glob("weights-*.safetensors"),
        directory / WEIGHTS_FILE,
        *directory.glob(".weights-*.tmp"),
    ]:
        if old.name != weights_name:  # now unreferenced (or left by a killed writer)
            old.unlink(missing_ok=True)


def read_checkpoint(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`write_checkpoint`; every failure is a one-line :class:`CheckpointError`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"no checkpoint directory at {str(directory)!r}")
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"checkpoint {str(directory)!r} is incomplete: {CONFIG_FILE} is missing")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {str(directory)!r}: {CONFIG_FILE} is corrupt ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {str(directory)!r}: {CONFIG_FILE} does not hold a JSON object")
    weights_name = config.pop(WEIGHTS_KEY, WEIGHTS_FILE)
    weights_path = directory / str(weights_name)
    if not weights_path.is_file():
        raise CheckpointError(f"checkpoint {str(directory)!r} is incomplete: {weights_name} is missing")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"checkpoint {str(directory)!r}: {weights_name} is corrupt ({message})"
        ) from None
    return tensors, config


def weights_path(directory: str | os.PathLike) -> Path:
    """The weights file a checkpoint's ``config.json`` names (for tools and tests)."""
    config = json.loads((Path(directory) / CONFIG_FILE).read_text(encoding="utf-8"))
    return Path(directory) / config.get(WEIGHTS_KEY, WEIGHTS_FILE)
