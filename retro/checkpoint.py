"""Checkpoint IO: tensors in safetensors, configuration in JSON. Loading never unpickles.

A checkpoint is a directory holding ``config.json`` and the weights file it names (``weights-<id>.safetensors``;
checkpoints from before that scheme hold ``weights.safetensors``). Writing puts the new weights under a fresh name,
then atomically replaces ``config.json`` (temporary file + rename), then deletes the old weights. A process killed
at any moment therefore leaves a consistent checkpoint, the new one or the previous one, never a mix.

A checkpoint is untrusted input: ``config.json`` may only name a weights file that is a plain file name in the same
directory (no ``..``, no absolute path, no symbolic link), and a tensor holding NaN or an infinity is refused at
load. Writing only ever deletes the weights file the previous ``config.json`` named and files under this module's
own random names (``weights-<12 hex digits>.safetensors`` and its temporary files), never other files.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from retro.atomic import TEMP_SUFFIX, atomic_write
from retro.errors import RetroError
from retro.safepaths import UnsafePathError, member_path, refuse_symlink

__all__ = [
    "write_checkpoint",
    "read_checkpoint",
    "read_config",
    "remove_checkpoint",
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


WEIGHTS_NAME = re.compile(r"weights-[0-9a-f]{12}\.safetensors")  # the names write_checkpoint gives
LEFTOVER_NAME = re.compile(  # this module's temporary files, left by a killed writer
    r"\.(weights-[0-9a-f]{12}\.safetensors|config\.json)\.[A-Za-z0-9_]+" + re.escape(TEMP_SUFFIX)
)


def _previous_weights(directory: Path) -> str | None:
    """The weights file the directory's current ``config.json`` names, if it is a checkpoint's."""
    config_path = directory / CONFIG_FILE
    if os.path.islink(config_path) or not config_path.is_file():
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError, RecursionError):
        return None
    name = config.get(WEIGHTS_KEY, WEIGHTS_FILE) if isinstance(config, dict) else None
    return name if isinstance(name, str) and (name == WEIGHTS_FILE or WEIGHTS_NAME.fullmatch(name)) else None


def write_checkpoint(
    directory: str | os.PathLike, tensors: dict[str, torch.Tensor], config: dict[str, Any]
) -> None:
    """Write ``tensors`` and ``config`` into ``directory`` (created if needed), crash-consistently."""
    weights_name = f"weights-{uuid.uuid4().hex[:12]}.safetensors"
    text = json.dumps(
        {**config, WEIGHTS_KEY: weights_name}, indent=2, sort_keys=True
    )  # fails before any write
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(
            f"cannot create checkpoint directory {str(directory)!r}: {e.strerror or e}"
        ) from None
    refuse_symlink(directory / CONFIG_FILE, "checkpoint file")
    previous = _previous_weights(directory)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(directory / weights_name, lambda tmp: save_file(tensors, tmp))
    atomic_write(directory / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    # Only what this module wrote: the weights the previous config named, and weights and temporary files under
    # this module's own random names (left by a writer killed between its two renames).
    stale = [directory / previous] if previous is not None and previous != weights_name else []
    stale += [
        path
        for path in directory.iterdir()
        if (LEFTOVER_NAME.fullmatch(path.name) or WEIGHTS_NAME.fullmatch(path.name))
        and path.name != weights_name
    ]
    for old in stale:
        old.unlink(missing_ok=True)


def read_checkpoint(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`write_checkpoint`; every failure is a one-line :class:`CheckpointError`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"no checkpoint directory at {str(directory)!r}")
    config = read_config(directory)
    weights_name = config.pop(WEIGHTS_KEY, WEIGHTS_FILE)
    try:
        weights_path = member_path(directory, weights_name, f"checkpoint {str(directory)!r}: weights file")
    except UnsafePathError as e:
        raise CheckpointError(str(e)) from None
    if not weights_path.is_file():
        raise CheckpointError(f"checkpoint {str(directory)!r} is incomplete: {weights_name} is missing")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"checkpoint {str(directory)!r}: {weights_name} is corrupt ({message})"
        ) from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"checkpoint {str(directory)!r}: tensor {name!r} in {weights_name} holds NaN or infinite values"
            )
    return tensors, config


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's ``config.json`` as a dict (a plain file, valid UTF-8 JSON holding an object), or a one-line
    :class:`CheckpointError`."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if os.path.islink(config_path):
        raise CheckpointError(f"checkpoint {str(directory)!r}: {CONFIG_FILE} is a symbolic link")
    if not config_path.is_file():
        raise CheckpointError(f"checkpoint {str(directory)!r} is incomplete: {CONFIG_FILE} is missing")
    try:
        config = json.loads(config_path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # ValueError: also over-long integers
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"checkpoint {str(directory)!r}: {CONFIG_FILE} is corrupt ({message})"
        ) from None
    except OSError as e:
        raise CheckpointError(
            f"checkpoint {str(directory)!r}: cannot read {CONFIG_FILE} ({e.strerror})"
        ) from None
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {str(directory)!r}: {CONFIG_FILE} does not hold a JSON object")
    return config


def weights_path(directory: str | os.PathLike) -> Path:
    """The weights file a checkpoint's ``config.json`` names (for tools and tests)."""
    name = read_config(directory).get(WEIGHTS_KEY, WEIGHTS_FILE)
    try:
        return member_path(directory, name, f"checkpoint {str(directory)!r}: weights file")
    except UnsafePathError as e:
        raise CheckpointError(str(e)) from None


def remove_checkpoint(directory: str | os.PathLike) -> None:
    """Delete a checkpoint written by :func:`write_checkpoint`: its ``config.json``, the weights file it names and
    this module's own leftovers; the directory too if nothing else is in it. Other files are left alone."""
    directory = Path(directory)
    refuse_symlink(directory / CONFIG_FILE, "checkpoint file")
    previous = _previous_weights(directory)
    doomed = [directory / previous] if previous is not None else []
    doomed += [
        p for p in directory.iterdir() if LEFTOVER_NAME.fullmatch(p.name) or WEIGHTS_NAME.fullmatch(p.name)
    ]
    # config.json first: a process killed in between leaves stray weights, never a checkpoint missing its weights.
    (directory / CONFIG_FILE).unlink(missing_ok=True)
    for path in doomed:
        path.unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:  # something else is in it
        pass
