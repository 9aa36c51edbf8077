"""A codec over a Hugging Face tokenizer: its EOS ends the answer, encoding is its canonical tokenization."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from retro.text import Codec, CodecError

__all__ = ["TokenizerCodec"]


def _preview(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


class TokenizerCodec(Codec):
    """Strings <-> token ids of a Hugging Face tokenizer (ids are the tokenizer's own; ``eos`` is its EOS).

    ``encode`` is the tokenizer's canonical tokenization of ``separator + text`` (the separator is the prompt
    template's trailing whitespace, which belongs to the answer: see :class:`retro.lm.PromptTemplate`). A string
    that does not decode back exactly (an unknown character dropped or replaced, a normalizer that changes it, a
    special token's text inside it) is a one-line error, never silently changed. Any token sequence can be scored,
    canonical or not; :meth:`token_bytes` gives the bytes each token contributes, for enumerating the other
    tokenizations of a string.

    Args:
        tokenizer: a ``PreTrainedTokenizerFast`` (or any tokenizer with ``encode``/``decode``).
        separator: text put before every answer when encoding, and removed when decoding.
    """

    def __init__(self, tokenizer: Any, separator: str = ""):
        self.tokenizer = tokenizer
        self.separator = separator
        self.num_symbols = len(tokenizer) - 1  # so that vocab_size == len(tokenizer)
        self._eos = int(tokenizer.eos_token_id)

    @property
    def eos(self) -> int:
        return self._eos

    @cached_property
    def special_ids(self) -> frozenset[int]:
        """Ids of the tokenizer's special tokens (EOS, BOS, padding, ...)."""
        return frozenset(int(i) for i in self.tokenizer.all_special_ids)

    def encode(self, text: str) -> list[int]:
        full = self.separator + text
        ids = list(self.tokenizer.encode(full, add_special_tokens=False))
        special = [i for i in ids if i in self.special_ids]
        if special:
            raise CodecError(
                f"{_preview(text)} contains the text of the special token "
                f"{self.tokenizer.convert_ids_to_tokens(special[0])!r}, which an answer cannot hold"
            )
        back = self._decode_raw(ids)
        if back != full:
            raise CodecError(
                f"the tokenizer cannot represent {_preview(text)} exactly (it reads back as {_preview(back)})"
            )
        return ids

    def _decode_raw(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(
            [int(i) for i in ids], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def decode(self, ids: Sequence[int]) -> str:
        """The string of a token sequence (its leading separator removed; a sampled sequence that lacks it, or
        holds bytes that are not valid UTF-8, decodes to the tokenizer's reading of it)."""
        text = self._decode_raw(ids)
        return text[len(self.separator) :] if text.startswith(self.separator) else text

    def symbol(self, token: int) -> str:
        return "<eos>" if token == self.eos else str(self.tokenizer.convert_ids_to_tokens(int(token)))

    @cached_property
    def _byte_decoder(self) -> dict[str, int] | None:
        """GPT-2's printable-character stand-ins for bytes, when the tokenizer is byte-level."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        decoder = getattr(backend, "decoder", None)
        if decoder is None or "ByteLevel" not in type(decoder).__name__ and "ByteLevel" not in repr(decoder):
            return None
        return {c: b for b, c in _bytes_to_unicode().items()}

    def token_bytes(self, token: int) -> bytes | None:
        """The bytes ``token`` contributes to the decoded string (``None`` for EOS and other special tokens).

        Exact for byte-level BPE tokenizers (GPT-2 style) and for SentencePiece-style ones (``▁`` for a space,
        ``<0xNN>`` byte fallback); otherwise the UTF-8 of the token decoded alone."""
        token = int(token)
        if token in self.special_ids or token == self.eos:
            return None
        piece = self.tokenizer.convert_ids_to_tokens(token)
        if piece is None:
            return None
        if self._byte_decoder is not None:
            try:
                return bytes(self._byte_decoder[c] for c in piece)
            except KeyError:
                pass  # an added token written in plain text
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            return bytes([int(piece[3:5], 16)])
        if "\u2581" in piece:
            return piece.replace("\u2581", " ").encode("utf-8")
        return self._decode_raw([token]).encode("utf-8")

    def config(self) -> dict[str, Any]:
        return {
            "type": "tokenizer",
            "separator": self.separator,
            "vocab_size": self.vocab_size,
            "eos": self.eos,
        }

    def __repr__(self) -> str:
        return (
            f"TokenizerCodec({type(self.tokenizer).__name__}, vocab_size={self.vocab_size}, eos={self.eos})"
        )


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte to the printable character that stands for it in byte-level BPE vocabularies."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    characters = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            characters.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, characters)}
