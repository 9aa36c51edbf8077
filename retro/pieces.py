"""``PieceCodec``: tokens are pieces of text, so one string has many token sequences.

A tokenizer in miniature (like a BPE vocabulary over a small alphabet): the tokens ``a``, ``b``, ``ab``, ``abc``
... all spell text, every token sequence decodes to a string (the concatenation of its pieces), and a string such
as ``"abc"`` is spelled by ``[abc]``, ``[ab, c]``, ``[a, bc]`` and ``[a, b, c]``. ``encode`` returns the canonical
one (greedy longest match from the left); :mod:`retro.tokenizations` enumerates and samples the others. Every
character of a piece must also be a piece of its own, so every string over the pieces' characters is encodable.

Example:
    >>> codec = PieceCodec(["a", "b", "c", "ab", "bc", "abc"])
    >>> codec.encode("abcab"), codec.decode([0, 4, 3])
    ([5, 3], 'abcab')
    >>> codec.token_bytes(5), codec.token_bytes(codec.eos)
    (b'abc', None)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from retro.text import Codec, CodecError

__all__ = ["PieceCodec"]


class PieceCodec(Codec):
    """Pieces of text plus EOS; ``encode`` is the greedy longest-match tokenization.

    Args:
        pieces: distinct non-empty strings; each character of each piece must be a piece too.
    """

    def __init__(self, pieces: Sequence[str]):
        pieces = list(pieces)
        if (
            not pieces
            or any(not isinstance(p, str) or not p for p in pieces)
            or len(set(pieces)) != len(pieces)
        ):
            raise CodecError(f"pieces must be distinct non-empty strings, got {pieces!r}")
        missing = sorted({c for p in pieces for c in p} - set(pieces))
        if missing:
            raise CodecError(f"every character of a piece must be a piece of its own; missing {missing!r}")
        self.pieces = pieces
        self.num_symbols = len(pieces)
        self._index = {p: i for i, p in enumerate(pieces)}
        self._longest = max(len(p) for p in pieces)

    def encode(self, text: str) -> list[int]:
        ids, start = [], 0
        while start < len(text):
            for size in range(min(self._longest, len(text) - start), 0, -1):
                token = self._index.get(text[start : start + size])
                if token is not None:
                    ids.append(token)
                    start += size
                    break
            else:
                raise CodecError(
                    f"character {text[start]!r} at position {start} of {text[:40]!r} is not a piece of "
                    f"{''.join(sorted({c for p in self.pieces for c in p}))!r}"
                )
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.pieces[int(i)] for i in ids)

    def token_bytes(self, token: int) -> bytes | None:
        """The UTF-8 bytes token ``token`` contributes to the string (``None`` for EOS)."""
        return None if token == self.eos else self.pieces[int(token)].encode("utf-8")

    def config(self) -> dict[str, Any]:
        return {"type": "pieces", "pieces": list(self.pieces)}

    def __repr__(self) -> str:
        return f"PieceCodec({self.pieces!r})"
