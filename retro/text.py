"""Text codecs and padded string batches.

A codec maps a string to token ids and back. Every codec reserves one extra id, ``eos``, that ends a string, so
``vocab_size = number of symbols + 1`` and a distribution over token sequences ending in EOS is a distribution over
strings. Batches are padded *with EOS*: everything after the first EOS is ignored.

Example:
    >>> codec = ByteCodec()
    >>> batch = StringBatch.from_strings(["hi", "héllo"], codec, max_length=16)
    >>> batch.tokens.shape, batch.lengths.tolist()
    (torch.Size([2, 7]), [2, 6])
    >>> batch.to_strings(codec)
    ['hi', 'héllo']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from retro.errors import RetroError

__all__ = [
    "Codec",
    "ByteCodec",
    "AlphabetCodec",
    "SymbolCodec",
    "StringBatch",
    "codec_from_config",
    "CodecError",
]


class CodecError(RetroError):
    """A string cannot be encoded by a codec, or is longer than allowed."""


def _preview(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


class Codec:
    """Base class: strings <-> token ids, with ``eos`` as the last id."""

    num_symbols: int

    @property
    def eos(self) -> int:
        return self.num_symbols

    @property
    def vocab_size(self) -> int:
        return self.num_symbols + 1

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def symbol(self, token: int) -> str:
        """A printable name of one token (for tables and errors)."""
        return "<eos>" if token == self.eos else self.decode([token])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash(str(self.config()))


class ByteCodec(Codec):
    """UTF-8 bytes plus EOS: every string has a code, so every string gets a probability."""

    num_symbols = 256

    def encode(self, text: str) -> list[int]:
        try:
            return list(text.encode("utf-8"))
        except UnicodeEncodeError as e:  # a lone surrogate: not text, so it has no UTF-8 bytes
            raise CodecError(
                f"{_preview(text)} holds a lone surrogate U+{ord(text[e.start]):04X} at position {e.start} (not text)"
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        # Samples can be any byte sequence; show invalid UTF-8 rather than failing.
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def config(self) -> dict[str, Any]:
        return {"type": "bytes"}

    def __repr__(self) -> str:
        return "ByteCodec()"


class AlphabetCodec(Codec):
    """A fixed alphabet plus EOS. A character outside the alphabet is an error, never a silent UNK
    (an UNK token would pool many strings into one and inflate log p)."""

    def __init__(self, alphabet: str):
        if len(set(alphabet)) != len(alphabet) or not alphabet:
            raise CodecError(f"alphabet must be non-empty with distinct characters, got {_preview(alphabet)}")
        self.alphabet = alphabet
        self.num_symbols = len(alphabet)
        self._index = {c: i for i, c in enumerate(alphabet)}

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError:
            pos = next(i for i, c in enumerate(text) if c not in self._index)
            raise CodecError(
                f"character {text[pos]!r} at position {pos} of {_preview(text)} is not in the alphabet "
                f"{_preview(self.alphabet)}"
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.alphabet[int(i)] for i in ids)

    def config(self) -> dict[str, Any]:
        return {"type": "alphabet", "alphabet": self.alphabet}

    def __repr__(self) -> str:
        return f"AlphabetCodec({self.alphabet!r})"


class SymbolCodec(Codec):
    """A fixed vocabulary of multi-character symbols joined by a separator, plus EOS: one token per symbol.

    For answers that are sequences of units, such as ARPAbet phonemes (``"T AH M EY T OW"``: six tokens, not
    fourteen characters). Exactly the strings made of vocabulary symbols joined by single separators are
    encodable (the empty string is the empty sequence), so each has one token sequence and the distribution
    over token sequences is a distribution over those strings. Anything else is an error naming the offending
    piece, never a silent UNK.

    Example:
        >>> codec = SymbolCodec(["T", "AH", "M"])
        >>> codec.encode("T AH M AH"), codec.decode([2, 1])
        ([0, 1, 2, 1], 'M AH')
    """

    def __init__(self, symbols: Sequence[str], separator: str = " "):
        symbols = list(symbols)
        if not separator:
            raise CodecError("the separator of a SymbolCodec must be a non-empty string")
        bad = [s for s in symbols if not isinstance(s, str) or not s or separator in s]
        if not symbols or bad or len(set(symbols)) != len(symbols):
            raise CodecError(
                f"symbols must be distinct non-empty strings without the separator {separator!r}; got "
                f"{_preview(' '.join(map(repr, bad or symbols)))}"
            )
        self.symbols = symbols
        self.separator = separator
        self.num_symbols = len(symbols)
        self._index = {s: i for i, s in enumerate(symbols)}

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        pieces = text.split(self.separator)
        try:
            return [self._index[p] for p in pieces]
        except KeyError:
            pos = next(i for i, p in enumerate(pieces) if p not in self._index)
            raise CodecError(
                f"symbol {pieces[pos]!r} (number {pos} of {_preview(text)}, split on {self.separator!r}) is not "
                f"in the vocabulary {_preview(' '.join(self.symbols))}"
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        return self.separator.join(self.symbols[int(i)] for i in ids)

    def config(self) -> dict[str, Any]:
        return {"type": "symbols", "symbols": list(self.symbols), "separator": self.separator}

    def __repr__(self) -> str:
        return f"SymbolCodec({self.symbols!r}, separator={self.separator!r})"


def codec_from_config(config: dict[str, Any]) -> Codec:
    if not isinstance(config, dict):
        raise CodecError(
            f"a codec's config must be a JSON object, got {type(config).__name__} {_preview(str(config))}"
        )
    kind = config.get("type")
    if kind == "bytes":
        return ByteCodec()
    if kind == "alphabet":
        return AlphabetCodec(config["alphabet"])
    if kind == "symbols":
        return SymbolCodec(config["symbols"], config.get("separator", " "))
    if kind == "pieces":
        from retro.pieces import PieceCodec  # a module of its own that builds on this one

        return PieceCodec(config["pieces"])
    raise CodecError(f"unknown codec type {kind!r} in config {_preview(str(config))}")


@dataclass(frozen=True)
class StringBatch:
    """Strings as a padded token tensor.

    Attributes:
        tokens: ``LongTensor[..., W]``; row ``i`` holds its tokens, then EOS up to width ``W`` (at least one EOS).
        lengths: ``LongTensor[...]``, number of tokens before the first EOS.
    """

    tokens: torch.Tensor
    lengths: torch.Tensor

    @staticmethod
    def from_strings(
        texts: Sequence[str],
        codec: Codec,
        max_length: int | None = None,
        device: torch.device | str | None = None,
        what: str = "answer",
    ) -> StringBatch:
        """Encode strings; a string longer than ``max_length`` tokens is an error (never truncated)."""
        encoded = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise CodecError(f"{what} {i} is {type(text).__name__}, not a string: {text!r}")
            try:
                ids = codec.encode(text)
            except CodecError as e:
                raise CodecError(f"{what} {i}: {e}") from None
            if max_length is not None and len(ids) > max_length:
                raise CodecError(
                    f"{what} {i} ({_preview(text)}) is {len(ids)} tokens long; max_length is {max_length}"
                )
            encoded.append(ids)
        width = max((len(ids) for ids in encoded), default=0) + 1
        # one tensor from padded lists (not a tensor per string: that costs more than the encoding itself)
        eos = [codec.eos] * width
        padded = [list(ids) + eos[len(ids) :] for ids in encoded]
        tokens = torch.tensor(padded, dtype=torch.long).reshape(len(encoded), width)
        lengths = torch.tensor([len(ids) for ids in encoded], dtype=torch.long)
        return StringBatch(tokens.to(device), lengths.to(device))

    @staticmethod
    def from_tokens(tokens: torch.Tensor, eos: int) -> StringBatch:
        """Wrap EOS-padded tokens (e.g. samples); rows without an EOS are cut at the width."""
        is_eos = tokens == eos
        width = tokens.shape[-1]
        lengths = torch.where(
            is_eos.any(-1), is_eos.long().argmax(-1), torch.full_like(tokens[..., 0], width)
        )
        return StringBatch(tokens, lengths)

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def width(self) -> int:
        return self.tokens.shape[-1]

    def to(self, device: torch.device | str) -> StringBatch:
        return StringBatch(self.tokens.to(device), self.lengths.to(device))

    def __getitem__(self, index: slice | torch.Tensor | Sequence[int]) -> StringBatch:
        lengths = self.lengths[index]
        width = int(lengths.max()) + 1 if lengths.numel() else 1
        return StringBatch(self.tokens[index][..., :width], lengths)

    def to_strings(self, codec: Codec) -> list[str]:
        flat_tokens = self.tokens.reshape(-1, self.width).tolist()
        flat_lengths = self.lengths.reshape(-1).tolist()
        return [codec.decode(row[:n]) for row, n in zip(flat_tokens, flat_lengths)]
