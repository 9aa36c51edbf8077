"""Imitator programs: the Imitator contract and the built-in imitators."""

from __future__ import annotations

from typing import Any

from retro.errors import RetroError
from retro.models.base import Imitator
from retro.models.latent import LatentSeq2Seq
from retro.models.lm import LanguageModel, PersonaLM, SoftPromptLM
from retro.models.mixture import MixtureSeq2Seq
from retro.models.seq2seq import Seq2Seq
from retro.text import codec_from_config

__all__ = [
    "Imitator",
    "Seq2Seq",
    "LatentSeq2Seq",
    "MixtureSeq2Seq",
    "LanguageModel",
    "PersonaLM",
    "SoftPromptLM",
    "IMITATORS",
    "make_imitator",
    "imitator_from_config",
    "needs_base",
]

IMITATORS: dict[str, type[Imitator]] = {
    cls.name: cls for cls in (Seq2Seq, LatentSeq2Seq, MixtureSeq2Seq, LanguageModel, PersonaLM, SoftPromptLM)
}


def make_imitator(name: str, **hyperparameters: Any) -> Imitator:
    """A fresh built-in imitator by name (see ``retro imitators``)."""
    if name not in IMITATORS:
        raise RetroError(f"unknown imitator {name!r}; built-in imitators: {', '.join(sorted(IMITATORS))}")
    return IMITATORS[name](**hyperparameters)


def needs_base(name: str) -> bool:
    """Whether built-in imitator ``name`` is built on a pretrained language model (``--base DIR``)."""
    return bool(getattr(IMITATORS.get(name), "needs_base", False))


def imitator_from_config(config: dict[str, Any], base: Any = None) -> Imitator:
    """Rebuild an (untrained) imitator from :meth:`Imitator.config` output.

    ``base`` (a model directory or :class:`retro.lm.LMBase`) is required by the language-model imitators, and must
    be the base they were built on (same weights hash); the others ignore it."""
    config = dict(config)
    name = config.get("imitator")
    if needs_base(name):
        return IMITATORS[name].from_config(config, base)
    config.pop("imitator", None)
    codec = codec_from_config(config.pop("codec", {"type": "bytes"}))
    if "question_codec" in config:
        config["question_codec"] = codec_from_config(config["question_codec"])
    return make_imitator(name, codec=codec, **config)
