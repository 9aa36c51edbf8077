"""The prompt/answer boundary, the tokenizer codec, and batching: each property against a direct forward pass."""

from __future__ import annotations

import pytest
import torch

from retro.errors import RetroError

pytest.importorskip("transformers", reason="needs the [lm] extra: pip install 'retro-imitators[lm]'")

from retro.inference import exact  # noqa: E402
from retro.lm import PromptTemplate, TokenizerCodec  # noqa: E402
from retro.models import LanguageModel  # noqa: E402
from retro.text import CodecError  # noqa: E402


def direct_log_prob(model, context_ids: list[int], answer_ids: list[int]) -> float:
    """log p(answer_ids | context_ids), EOS included in answer_ids, from one forward pass over the whole row."""
    ids = torch.tensor([context_ids + answer_ids])
    with torch.no_grad():
        log_probs = model(input_ids=ids).logits.log_softmax(-1)[0]
    start = len(context_ids) - 1
    return sum(log_probs[start + i, t].item() for i, t in enumerate(answer_ids))


def test_a_separating_space_belongs_to_the_answer(load_tiny):
    base = load_tiny("gpt2")
    imitator = LanguageModel(base, template="Q: {question}\nA: ", max_length=8).double()
    tokenizer = base.tokenizer
    assert imitator.prompt_ids("the cat") == tokenizer.encode("Q: the cat\nA:")
    answer_ids = imitator.codec.encode("hello")
    assert answer_ids == tokenizer.encode(" hello")  # one token for " hello", not a lone space then "hello"
    assert imitator.codec.decode(answer_ids) == "hello"
    expected = direct_log_prob(
        base.model, tokenizer.encode("Q: the cat\nA:"), answer_ids + [imitator.codec.eos]
    )
    assert exact(imitator, ["the cat"], ["hello"]).records[0].log_prob == pytest.approx(expected, abs=1e-10)


def test_a_token_that_would_span_the_join_is_not_used(load_tiny):
    """Prompt "wh" + answer "at": tokenized together, "what" has a token ("hat") across the join; retro reads the
    prompt's tokens, then the answer's own canonical tokens (which decode to exactly the answer)."""
    base = load_tiny("gpt2")
    tokenizer = base.tokenizer
    joined = tokenizer.encode("what")
    prompt, answer = tokenizer.encode("wh"), tokenizer.encode("at")
    assert joined != prompt + answer  # the join really is spanned by a token of the joint tokenization
    imitator = LanguageModel(base, template="{question}", max_length=8).double()
    assert imitator.codec.encode("at") == answer
    expected = direct_log_prob(base.model, prompt, answer + [imitator.codec.eos])
    assert exact(imitator, ["wh"], ["at"]).records[0].log_prob == pytest.approx(expected, abs=1e-10)


def test_bos_comes_first_where_the_model_expects_it(load_tiny):
    llama, gpt2 = load_tiny("llama"), load_tiny("gpt2")
    with_bos = LanguageModel(llama, template="Q: {question}\nA:").double()
    ids = with_bos.prompt_ids("hi")
    assert ids[0] == llama.tokenizer.bos_token_id and ids[1:] == llama.tokenizer.encode("Q: hi\nA:")[1:]
    without = LanguageModel(gpt2, template="Q: {question}\nA:")
    assert without.prompt_ids("hi") == gpt2.tokenizer.encode("Q: hi\nA:")
    assert gpt2.tokenizer.bos_token_id not in without.prompt_ids("hi")
    # an empty prompt reads the start token, as lm-evaluation-harness does
    assert LanguageModel(gpt2, template="{question}").prompt_ids("") == [gpt2.tokenizer.bos_token_id]
    answer = with_bos.codec.encode("the cat") + [with_bos.codec.eos]
    expected = direct_log_prob(llama.model, ids, answer)
    assert exact(with_bos, ["hi"], ["the cat"]).records[0].log_prob == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_padding_side_and_batch_size_do_not_change_the_numbers(load_tiny, kind):
    """float32: left vs right padding, and one answer at a time vs all together, within 1e-5 nats.

    The second batch is one length group (its prompts run together) with the shorter prompt first."""
    base = load_tiny(kind, torch.float32)
    batches = [
        (
            ["what is two plus three", "hi", "the cat sat on a mat and the dog ran", "", "hi"],
            ["five", "hello world", "", "a bird in a tree", "the"],
        ),
        (
            ["the cat sat on a mat and the dog", "the cat sat on a mat and the dog ran"],
            ["five", "hello world"],
        ),
    ]
    for questions, answers in batches:
        together = {}
        for side in ("left", "right"):
            imitator = LanguageModel(base, template="Q: {question}\nA: ", padding_side=side, max_length=16)
            together[side] = torch.tensor([r.log_prob for r in exact(imitator, questions, answers).records])
        one_at_a_time = torch.tensor(
            [exact(imitator, [q], [a]).records[0].log_prob for q, a in zip(questions, answers)]
        )
        assert torch.allclose(together["left"], together["right"], atol=1e-5, rtol=0)
        assert torch.allclose(together["left"], one_at_a_time, atol=1e-5, rtol=0), questions
        assert torch.isfinite(together["left"]).all()


def test_the_codec_round_trips_exactly_or_says_why(load_tiny, lm_dirs):
    gpt2 = load_tiny("gpt2")
    codec = TokenizerCodec(gpt2.tokenizer, separator=" ")
    for text in ["hello world", "naïve café ☕", "", "  two  spaces"]:
        ids = codec.encode(text)
        assert codec.decode(ids) == text
        assert b"".join(codec.token_bytes(i) for i in ids) == (" " + text).encode("utf-8")
    assert codec.token_bytes(codec.eos) is None
    with pytest.raises(CodecError, match="special token"):
        codec.encode("a<|endoftext|>")
    small = load_tiny("ab")
    with pytest.raises(CodecError, match=r"cannot represent 'abc' exactly"):
        TokenizerCodec(small.tokenizer).encode("abc")
    with pytest.raises(RetroError, match="cannot represent the prompt"):
        LanguageModel(small, template="{question}").prompt_ids("xy")


def test_any_token_sequence_is_scored_not_only_the_canonical_one(load_tiny):
    base = load_tiny("gpt2")
    imitator = LanguageModel(base, template="Q: {question}\nA:", max_length=8).double()
    codec = imitator.codec
    canonical = codec.encode("hello")
    spelled = [base.tokenizer.convert_tokens_to_ids(c) for c in "hello"]
    assert canonical != spelled and codec.decode(spelled) == "hello"
    batch = imitator.encode_questions(["hi", "hi"])
    cache = imitator.prompt_cache(batch)
    tokens = torch.full((2, 7), codec.eos)
    tokens[0, : len(canonical)] = torch.tensor(canonical)
    tokens[1, :5] = torch.tensor(spelled)
    log_probs = imitator.answer_distribution(cache).log_prob(tokens)
    prompt = imitator.prompt_ids("hi")
    for row, ids in enumerate([canonical, spelled]):
        assert log_probs[row].item() == pytest.approx(
            direct_log_prob(base.model, prompt, ids + [codec.eos]), abs=1e-10
        )


def test_a_template_without_the_question_slot_is_one_line(load_tiny):
    with pytest.raises(RetroError, match=r"has no \{question\} slot"):
        PromptTemplate.of("Answer the question:")
    with pytest.raises(RetroError, match=r"has no \{question\} slot"):
        LanguageModel(load_tiny("gpt2"), template="no slot here")
