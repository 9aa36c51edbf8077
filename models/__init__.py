"""Imitator programs: the Imitator contract and the built-in imitators."""

from __future__ import annotations

from typing import Any

from retro.errors import RetroError
from retro.memory import checked_build
from retro.models.base import Imitator
from retro.models.latent import LatentSeq2Seq
from retro.models.mixture import MixtureSeq2Seq
from retro.models.seq2seq import Seq2Seq
from retro.text import codec_from_config

__all__ = [
    "Imitator",
    "Seq2Seq",
    "LatentSeq2Seq",
    "MixtureSeq2Seq",
    "IMITATORS",
    "make_imitator",
    "imitator_from_config",
]

IMITATORS: dict[str, type[Imitator]] = {cls.name: cls for cls in (Seq2Seq, LatentSeq2Seq, MixtureSeq2Seq)}


def make_imitator(name: str, **hyperparameters: Any) -> Imitator:
    """A fresh built-in imitator by name (see ``retro imitators``)."""
    if not isinstance(name, str) or name not in IMITATORS:
        raise RetroError(f"unknown imitator {name!r}; built-in imitators: {', '.join(sorted(IMITATORS))}")
    cls = IMITATORS[name]
    try:  # sizes come from flags and files: checked on the meta device before anything is allocated
        return checked_build(lambda: cls(**hyperparameters), f"imitator {name!r}")
    except RetroError:
        raise
    except (TypeError, ValueError) as e:  # e.g. hidden_dim 0, a string where a number belongs
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RetroError(f"imitator {name!r}: {message}") from None


def imitator_from_config(config: dict[str, Any]) -> Imitator:
    """Rebuild an (untrained) imitator from :meth:`Imitator.config` output."""
    if not isinstance(config, dict):
        raise RetroError(f"an imitator's config must be a JSON object, got {type(config).__name__}")
    config = dict(config)
    name = config.pop("imitator", None)
    codec = codec_from_config(config.pop("codec", {"type": "bytes"}))
    if "question_codec" in config:
        config["question_codec"] = codec_from_config(config["question_codec"])
    return make_imitator(name, codec=codec, **config)
