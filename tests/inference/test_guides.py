"""The amortized guide's two encoders: n-gram features (what ``retro train`` uses) and GRUs (guides saved before)."""

from __future__ import annotations

import pytest
import torch

from retro.errors import RetroError
from retro.inference.guides import GUIDE_ENCODERS, AmortizedGuide
from retro.models import LatentSeq2Seq
from retro.nets import NgramEncoder, StringEncoder
from retro.text import ByteCodec, StringBatch


def test_an_ngram_vector_does_not_depend_on_its_batch():
    torch.manual_seed(0)
    encoder = NgramEncoder(ByteCodec().vocab_size, hidden_dim=16)
    codec = ByteCodec()
    alone = encoder(StringBatch.from_strings(["ab", ""], codec))
    beside = encoder(StringBatch.from_strings(["ab", "", "a much longer string"], codec))
    assert alone.shape == (2, 16)
    torch.testing.assert_close(beside[:2], alone, rtol=0, atol=1e-6)
    assert not torch.allclose(beside[0], beside[1])  # "ab" and the empty string differ


def test_an_ngram_window_is_odd():
    with pytest.raises(ValueError, match="odd number of tokens, got 2"):
        NgramEncoder(10, width=2)


@pytest.mark.parametrize("encoder, kind", [("ngram", NgramEncoder), ("gru", StringEncoder)])
def test_a_guide_comes_back_from_its_config_with_its_encoder(encoder, kind):
    imitator = LatentSeq2Seq(latent_dim=2, hidden_dim=8)
    guide = AmortizedGuide(imitator, hidden_dim=8, encoder=encoder)
    assert isinstance(guide.answer_encoder, kind) and guide.config()["encoder"] == encoder
    again = AmortizedGuide.from_config(imitator, guide.config())
    again.load_state_dict(guide.state_dict())  # the same tensors, the same shapes
    questions, answers = imitator.encode_questions(["1+1"]), imitator.encode_answers(["2"])
    torch.testing.assert_close(
        again.hidden(torch.cat([again.question_encoder(questions), again.answer_encoder(answers)], -1)),
        guide.hidden(torch.cat([guide.question_encoder(questions), guide.answer_encoder(answers)], -1)),
    )


def test_a_config_saved_before_the_choice_is_a_gru_guide_and_a_strange_one_is_refused():
    imitator = LatentSeq2Seq(latent_dim=2, hidden_dim=8)
    config = AmortizedGuide(imitator, hidden_dim=8, encoder="gru").config()
    del config["encoder"]
    assert isinstance(AmortizedGuide.from_config(imitator, config).answer_encoder, StringEncoder)
    with pytest.raises(
        RetroError, match=f"unknown guide encoder 'lstm': expected one of {', '.join(GUIDE_ENCODERS)}"
    ):
        AmortizedGuide.from_config(imitator, {**config, "encoder": "lstm"})
