"""PER counts the answer codec's units: characters for byte and alphabet codecs, symbols for a symbol codec."""

from __future__ import annotations

import pytest

from retro.inference.metrics import error_units, token_error_rate
from retro.text import AlphabetCodec, ByteCodec, SymbolCodec


def test_character_error_rate_for_byte_and_alphabet_codecs():
    references = {"spell": ["necessary"], "again": ["necessary"]}
    for codec in (ByteCodec(), AlphabetCodec("acenrsy")):
        units = error_units(codec)
        assert units.name == "character error rate"
        # one word each, so a word error rate would be 1.0; characters: 1 + 3 edits over 2 x 9 characters
        rate = token_error_rate(["spell", "again"], ["neccessary", "necessaries"], references, units.tokenize)
        assert rate == pytest.approx(4 / 18)
    assert error_units(ByteCodec()).tokenize("née") == ["n", "é", "e"]  # a character, not its two bytes


def test_symbol_error_rate_for_a_symbol_codec():
    units = error_units(SymbolCodec(["T", "AH", "M", "EY", "OW", "AA"]))
    assert units.name == "symbol error rate"
    rate = token_error_rate(["tomato"], ["T AH M AA T"], {"tomato": ["T AH M EY T OW"]}, units.tokenize)
    assert rate == pytest.approx(2 / 6)  # one substitution, one deletion, over six phonemes
