"""Loading a pretrained causal language model safely: a local directory, safetensors weights, no remote code.

A base is what every language-model imitator is built on and what every checkpoint of one is checked against: the
model, its tokenizer, and the SHA-256 of its weights files. A checkpoint never stores a path to its base; the user
gives the base again, and a base whose hash differs from the one recorded is a one-line error.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch

from retro.errors import RetroError
from retro.lm.extra import require

__all__ = ["LMBase", "load_base", "weights_sha256", "BaseModelError"]

PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
CHUNK = 1 << 24


class BaseModelError(RetroError):
    """A base model directory is missing, unreadable, unsafe to load, or not the one a checkpoint was trained on."""


class LMBase(NamedTuple):
    """A loaded base: ``model`` (an ``AutoModelForCausalLM``), ``tokenizer``, ``sha256`` of its weights files."""

    model: Any
    tokenizer: Any
    sha256: str
    directory: str


def weights_sha256(directory: str | os.PathLike) -> str:
    """SHA-256 over the base's safetensors files (their names and bytes, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(Path(directory).glob("*.safetensors")):
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _check_directory(directory: Path) -> None:
    where = str(directory)
    if not directory.is_dir():
        raise BaseModelError(
            f"base model {where!r} is not a directory (bases are loaded from local files only)"
        )
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise BaseModelError(f"base model {where!r} has no config.json")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BaseModelError(f"base model {where!r}: config.json is unreadable ({e})") from None
    if not isinstance(config, dict):
        raise BaseModelError(f"base model {where!r}: config.json does not hold a JSON object")
    if "auto_map" in config:
        raise BaseModelError(
            f"base model {where!r} needs its own code (auto_map in config.json); retro never runs code from a "
            "model directory"
        )
    if not any(directory.glob("*.safetensors")):
        pickled = sorted(p.name for pattern in PICKLED_WEIGHTS for p in directory.glob(pattern))
        if pickled:
            raise BaseModelError(
                f"base model {where!r} holds only pickled weights ({', '.join(pickled[:3])}); retro loads "
                "safetensors only (convert them, e.g. with save_pretrained(safe_serialization=True))"
            )
        raise BaseModelError(f"base model {where!r} has no weights (*.safetensors)")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_base(
    directory: str | os.PathLike | LMBase,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
) -> LMBase:
    """Load a causal LM and its tokenizer from a local directory.

    Local files only, weights from safetensors only, ``trust_remote_code`` off: a model directory cannot run code.

    Args:
        directory: a directory written by ``save_pretrained`` (an :class:`LMBase` is returned unchanged).
        dtype: the parameters' dtype (default: float32).
        device: where the model goes.

    Raises:
        BaseModelError: a missing or unreadable directory, one needing remote code or holding only pickled
            weights, or weights ``transformers`` cannot load (one line each).
    """
    if isinstance(directory, LMBase):
        return directory
    transformers = require("transformers")
    transformers.utils.logging.disable_progress_bar()
    path = Path(directory)
    _check_directory(path)
    where = str(path)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            where, local_files_only=True, trust_remote_code=False
        )
    except Exception as e:  # transformers raises many types; the user needs one line
        raise BaseModelError(
            f"base model {where!r}: its tokenizer cannot be loaded ({_first_line(e)})"
        ) from None
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            where,
            local_files_only=True,
            trust_remote_code=False,
            use_safetensors=True,
            dtype=dtype or torch.float32,
        )
    except Exception as e:
        raise BaseModelError(
            f"base model {where!r} cannot be loaded as a causal LM ({_first_line(e)})"
        ) from None
    if tokenizer.eos_token_id is None:
        raise BaseModelError(f"base model {where!r}: its tokenizer has no EOS token to end an answer")
    model.to(device).eval()
    return LMBase(model, tokenizer, weights_sha256(path), where)
