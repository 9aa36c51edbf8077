"""What fine-tuning trains in a language model: nothing, LoRA adapters on the frozen base, or every weight."""

from __future__ import annotations

import copy

from torch import nn

from retro.errors import RetroError
from retro.lm.extra import require

__all__ = ["FINETUNE_MODES", "prepare_model"]

FINETUNE_MODES = ("latent", "lora", "all", "none")
"""``latent``: only the imitator's own parts (persona weights, soft-prompt map), the base frozen; ``lora``: LoRA
adapters on the frozen base, and the latent parts; ``all``: every weight (e.g. a small model trained from random
initialization); ``none``: nothing (the imitator's parameters are frozen too)."""


def _lora_targets(model: nn.Module) -> list[str] | str:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type, "all-linear")


def prepare_model(model: nn.Module, mode: str, lora_rank: int = 8, lora_alpha: float = 16.0) -> nn.Module:
    """The model an imitator holds for fine-tuning ``mode`` (see :data:`FINETUNE_MODES`).

    ``latent`` and ``none`` share the base's model, frozen (``requires_grad`` off); ``lora`` and ``all`` work on a
    copy, so the base is never changed.
    """
    if mode not in FINETUNE_MODES:
        raise RetroError(f"unknown fine-tuning mode {mode!r}; expected one of {', '.join(FINETUNE_MODES)}")
    if mode in ("latent", "none"):
        return model.requires_grad_(False)
    model = copy.deepcopy(model)
    if mode == "all":
        return model.requires_grad_(True)
    if lora_rank < 1:
        raise RetroError(f"lora_rank must be >= 1, got {lora_rank}")
    peft = require("peft")
    config = peft.LoraConfig(
        r=int(lora_rank),
        lora_alpha=float(lora_alpha),
        lora_dropout=0.0,
        target_modules=_lora_targets(model),
        fan_in_fan_out=getattr(model.config, "model_type", None) == "gpt2",  # GPT-2 stores Conv1D weights
    )
    model.requires_grad_(False)
    model = peft.inject_adapter_in_model(config, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return model
