"""Pretrained causal language models as decoders of whole-string distributions (the optional ``[lm]`` extra).

Nothing here imports ``transformers`` until a model is loaded, so ``import retro`` works without the extra; using
it without the extra is a one-line error naming ``pip install 'retro-imitators[lm]'``.

* :func:`load_base`: a local model directory, safetensors weights only, never remote code; the weights' SHA-256.
* :class:`TokenizerCodec`: a tokenizer as a codec (its EOS ends the answer; canonical tokenization; exact round trip).
* :class:`PromptTemplate`: how a question becomes a prompt (its trailing whitespace belongs to the answer).
* :class:`LMDecoder`: the model under retro's decoder interface, with the prompt's key/value cache computed once.
"""

from retro.lm.base import BaseModelError, LMBase, load_base, weights_sha256
from retro.lm.cache import PrefixCache, PromptCache
from retro.lm.codec import TokenizerCodec
from retro.lm.decoder import LMDecoder
from retro.lm.extra import INSTALL_HINT, require
from retro.lm.finetune import FINETUNE_MODES, prepare_model
from retro.lm.prompt import DEFAULT_TEMPLATE, PromptTemplate

__all__ = [
    "BaseModelError",
    "LMBase",
    "load_base",
    "weights_sha256",
    "PrefixCache",
    "PromptCache",
    "TokenizerCodec",
    "LMDecoder",
    "INSTALL_HINT",
    "require",
    "FINETUNE_MODES",
    "prepare_model",
    "DEFAULT_TEMPLATE",
    "PromptTemplate",
]
