"""retro: train and score human imitators — Pyro programs over strings, judged by retrodiction or adversarially."""

import pyro

from retro.errors import RetroError
from retro.text import AlphabetCodec, ByteCodec, StringBatch, SymbolCodec

# Parameters live in their modules, never in Pyro's global param store (several models may coexist).
pyro.settings.set(module_local_params=True)

__all__ = ["RetroError", "ByteCodec", "AlphabetCodec", "SymbolCodec", "StringBatch"]
__version__ = "0.1.0"
