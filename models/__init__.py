"""Imitator programs: the Imitator contract, the built-in imitators, and the registry that names them.

A checkpoint names its imitator (``"imitator": "latent"``) and :func:`imitator_from_config` rebuilds it from this
registry; it never imports code. Your own imitator class is registered with :func:`register_imitator` (call it in
the module that defines the class; on the command line, ``--import MODULE`` imports that module first). An
installed package can offer imitators through the entry-point group ``retro.imitators`` (each entry point names an
``Imitator`` subclass); they are registered only when asked, by :func:`load_imitator_plugins` (``--plugins``).
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Any

from retro.errors import RetroError
from retro.memory import checked_build
from retro.models.base import Imitator
from retro.models.ensemble import Ensemble
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
    "Ensemble",
    "LanguageModel",
    "PersonaLM",
    "SoftPromptLM",
    "IMITATORS",
    "BUILT_IN_IMITATORS",
    "PLUGIN_GROUP",
    "UnknownImitatorError",
    "register_imitator",
    "load_imitator_plugins",
    "make_imitator",
    "imitator_from_config",
    "accepted_hyperparameters",
    "HOW_TO_REGISTER",
    "needs_base",
]

_BUILT_IN_CLASSES = (Seq2Seq, LatentSeq2Seq, MixtureSeq2Seq, Ensemble, LanguageModel, PersonaLM, SoftPromptLM)
BUILT_IN_IMITATORS = tuple(cls.name for cls in _BUILT_IN_CLASSES)
IMITATORS: dict[str, type[Imitator]] = {cls.name: cls for cls in _BUILT_IN_CLASSES}
PLUGIN_GROUP = "retro.imitators"
HOW_TO_REGISTER = (
    "register its class with retro.models.register_imitator in the module that defines it, and on the command "
    "line import that module with --import MODULE (or --plugins for an installed package's imitators)"
)


class UnknownImitatorError(RetroError):
    """An imitator name that is not registered."""


def register_imitator(cls: type[Imitator], name: str | None = None, replace: bool = False) -> type[Imitator]:
    """Register an :class:`Imitator` subclass under ``name`` (default ``cls.name``) so :func:`make_imitator` and
    checkpoints (:func:`imitator_from_config`) can find it; returns ``cls``, so it also works as a decorator.

    Re-registering the same class is harmless; another class under a taken name needs ``replace=True`` (a
    built-in never can be replaced).
    """
    if not (isinstance(cls, type) and issubclass(cls, Imitator)):
        raise RetroError(f"register_imitator takes an Imitator subclass, got {cls!r}")
    name = name or cls.name
    if not name:
        raise RetroError(f"{cls.__name__} has no name: set the class attribute name (or pass name=)")
    if cls.name != name:
        raise RetroError(f"{cls.__name__}.name is {cls.name!r}, not {name!r}: a checkpoint records cls.name")
    taken = IMITATORS.get(name)
    if taken is not None and taken is not cls and (name in BUILT_IN_IMITATORS or not replace):
        where = (
            "a built-in imitator"
            if name in BUILT_IN_IMITATORS
            else f"{taken.__module__}.{taken.__qualname__}"
        )
        raise RetroError(f"imitator name {name!r} is taken by {where}")
    IMITATORS[name] = cls
    return cls


def load_imitator_plugins() -> list[str]:
    """Register the imitators that installed packages offer in the entry-point group ``retro.imitators``;
    returns their names. Only called when the user asks (``--plugins``): installing a package runs nothing."""
    names = []
    for point in entry_points(group=PLUGIN_GROUP):
        try:
            cls = point.load()
        except Exception as e:  # a broken plug-in is named, not a traceback
            raise RetroError(f"imitator plug-in {point.name!r} ({point.value}) failed to load: {e}") from None
        names.append(register_imitator(cls, point.name).name)
    return names


def make_imitator(name: str, **hyperparameters: Any) -> Imitator:
    """A fresh imitator by its registered name (see ``retro imitators``)."""
    if not isinstance(name, str) or name not in IMITATORS:
        raise UnknownImitatorError(
            f"unknown imitator {name!r} (registered: {', '.join(sorted(IMITATORS))}); to use your own, "
            + HOW_TO_REGISTER
        )
    cls = IMITATORS[name]
    try:
        if needs_base(name):  # its size is its base's, already loaded; nothing in a config scales it
            return cls(**hyperparameters)
        # sizes come from flags and files: checked on the meta device before anything is allocated
        return checked_build(lambda: cls(**hyperparameters), f"imitator {name!r}")
    except RetroError:
        raise
    except (TypeError, ValueError) as e:  # e.g. hidden_dim 0, a string where a number belongs
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RetroError(f"imitator {name!r}: {message}") from None


def accepted_hyperparameters(name: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``hyperparameters`` that imitator ``name``'s constructor takes (all, with ``**kwargs``)."""
    if name not in IMITATORS:
        make_imitator(name)  # the error
    parameters = inspect.signature(IMITATORS[name]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(hyperparameters)
    return {k: v for k, v in hyperparameters.items() if k in parameters}


def needs_base(name: str) -> bool:
    """Whether built-in imitator ``name`` is built on a pretrained language model (``--base DIR``)."""
    return isinstance(name, str) and bool(getattr(IMITATORS.get(name), "needs_base", False))


def imitator_from_config(config: dict[str, Any], base: Any = None) -> Imitator:
    """Rebuild an (untrained) imitator from :meth:`Imitator.config` output.

    ``base`` (a model directory or :class:`retro.lm.LMBase`) is required by the language-model imitators, and must
    be the base they were built on (same weights hash); the others ignore it."""
    if not isinstance(config, dict):
        raise RetroError(f"an imitator's config must be a JSON object, got {type(config).__name__}")
    config = dict(config)
    name = config.get("imitator")
    if needs_base(name):
        return IMITATORS[name].from_config(config, base)
    config.pop("imitator", None)
    codec = codec_from_config(config.pop("codec", {"type": "bytes"}))
    if "question_codec" in config:
        config["question_codec"] = codec_from_config(config["question_codec"])
    return make_imitator(name, codec=codec, **config)
