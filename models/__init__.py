"""Imitator programs: the Imitator contract and the built-in imitators."""

from __future__ import annotations

from typing import Any

from retro.errors import RetroError
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
    if name not in IMITATORS:
        raise RetroError(f"unknown imitator {name!r}; built-in imitators: {', '.join(sorted(IMITATORS))}")
    return IMITATORS[name](**hyperparameters)


def imitator_from_config(config: dict[str, Any]) -> Imitator:
    """Rebuild an (untrained) imitator from :meth:`Imitator.config` output."""
    config = dict(config)
    name = config.pop("imitator", None)
    codec = codec_from_config(config.pop("codec", {"type": "bytes"}))
    if "question_codec" in config:
        config["question_codec"] = codec_from_config(config["question_codec"])
    return make_imitator(name, codec=codec, **config)
