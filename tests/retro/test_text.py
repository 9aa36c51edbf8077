import pytest
import torch

from retro.text import AlphabetCodec, ByteCodec, CodecError, StringBatch, SymbolCodec, codec_from_config


def test_byte_codec_round_trips_any_string():
    codec = ByteCodec()
    texts = ["", "hello", "héllo wörld", "日本語", "emoji 🙂"]
    batch = StringBatch.from_strings(texts, codec, max_length=64)
    assert batch.to_strings(codec) == texts
    assert batch.lengths.tolist() == [len(t.encode()) for t in texts]
    assert bool((batch.tokens[torch.arange(len(texts)), batch.lengths] == codec.eos).all())


def test_alphabet_codec_names_character_and_position():
    codec = AlphabetCodec("abc")
    with pytest.raises(
        CodecError, match=r"character 'x' at position 2 of 'abxc' is not in the alphabet 'abc'"
    ):
        codec.encode("abxc")


def test_over_long_answer_is_an_error_not_a_truncation():
    with pytest.raises(CodecError, match=r"answer 1 \('abcdef'\) is 6 tokens long; max_length is 5"):
        StringBatch.from_strings(["ab", "abcdef"], AlphabetCodec("abcdef"), max_length=5)


def test_codec_config_round_trip():
    for codec in (ByteCodec(), AlphabetCodec("xyz"), SymbolCodec(["AH", "T"], separator="-")):
        assert codec_from_config(codec.config()) == codec


def test_batch_indexing_trims_padding():
    batch = StringBatch.from_strings(["a", "abcd", "ab"], AlphabetCodec("abcd"))
    sub = batch[torch.tensor([0, 2])]
    assert sub.width == 3 and sub.to_strings(AlphabetCodec("abcd")) == ["a", "ab"]


def test_symbol_codec_is_one_token_per_symbol_and_names_a_bad_piece():
    codec = SymbolCodec(["T", "AH", "M", "EY", "OW"])
    texts = ["T AH M EY T OW", "", "OW"]
    batch = StringBatch.from_strings(texts, codec, max_length=6)
    assert batch.lengths.tolist() == [6, 0, 1] and batch.to_strings(codec) == texts
    for text, piece, number in (("T AX M", "AX", 1), ("T  AH", "", 1), (" T", "", 0), ("TAH", "TAH", 0)):
        with pytest.raises(CodecError, match=rf"symbol {piece!r} \(number {number} of {text!r}"):
            codec.encode(text)


@pytest.mark.parametrize("symbols", [[], ["A", "A"], ["A B"], [""]])
def test_symbol_codec_rejects_a_bad_vocabulary(symbols):
    with pytest.raises(CodecError, match="distinct non-empty strings"):
        SymbolCodec(symbols)
