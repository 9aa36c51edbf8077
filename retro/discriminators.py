"""Discriminators over (question, answer) pairs: a neural one, optionally fed a verifier's verdict, and a verifier.

Both output a logit of "this answer was written by the human" per pair, so the adversarial trainer and the
classifier two-sample test treat them alike. The neural discriminator encodes the question and the answer with
bidirectional GRUs (:class:`~retro.nets.StringEncoder`) and scores the pair with a small MLP; given a verifier, the
verdict (1 pass / 0 fail) is one more input feature, so it can learn that failing answers are never human.

Example:
    >>> from retro.text import ByteCodec
    >>> disc = NeuralDiscriminator(ByteCodec(), max_length=8, hidden_dim=16)
    >>> codec = ByteCodec()
    >>> disc.logits(StringBatch.from_strings(["2+3"], codec), StringBatch.from_strings(["5"], codec)).shape
    torch.Size([1])
"""

from __future__ import annotations

import torch
from torch import nn

from retro.nets import StringEncoder
from retro.text import Codec, StringBatch
from retro.verifiers import Verifier

__all__ = ["NeuralDiscriminator", "VerifierDiscriminator", "Discriminator", "VERIFIED_LOGIT"]

VERIFIED_LOGIT = 20.0  # a verifier discriminator's logit: sure, but finite (so losses stay finite)


class NeuralDiscriminator(nn.Module):
    """P(human | question, answer) from two string encoders and an MLP; ``verifier`` adds its verdict as a feature.

    Args:
        codec: the answer codec of the imitator whose answers it judges.
        max_length: the longest answer in tokens.
        hidden_dim: width of the encoders and of the MLP.
        verifier: optional check whose verdict is an extra input.
        question_codec: the imitator's question codec, when not ``codec``.
    """

    def __init__(
        self,
        codec: Codec,
        max_length: int = 32,
        hidden_dim: int = 64,
        verifier: Verifier | None = None,
        question_codec: Codec | None = None,
    ):
        super().__init__()
        self.codec, self.max_length, self.verifier = codec, max_length, verifier
        self.question_codec = question_codec or codec
        self.question_encoder = StringEncoder(self.question_codec.vocab_size, hidden_dim // 2)
        self.answer_encoder = StringEncoder(codec.vocab_size, hidden_dim // 2)
        features = self.question_encoder.output_dim + self.answer_encoder.output_dim + (verifier is not None)
        self.head = nn.Sequential(nn.Linear(features, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def logits(self, questions: StringBatch, answers: StringBatch) -> torch.Tensor:
        """``Tensor[N]``: the logit of "human" for each (question, answer) pair of token batches."""
        features = [
            self.question_encoder(questions.to(self.device)),
            self.answer_encoder(answers.to(self.device)),
        ]
        if self.verifier is not None:
            verdicts = self.verifier.check(
                questions.to_strings(self.question_codec), answers.to_strings(self.codec)
            )
            features.append(torch.tensor(verdicts, dtype=features[0].dtype, device=self.device)[:, None])
        return self.head(torch.cat(features, dim=-1))[:, 0]


class VerifierDiscriminator(nn.Module):
    """A discriminator that only asks the verifier: "human" exactly when the answer passes (no parameters)."""

    def __init__(self, verifier: Verifier, codec: Codec, question_codec: Codec | None = None):
        super().__init__()
        self.verifier, self.codec, self.question_codec = verifier, codec, question_codec or codec

    def logits(self, questions: StringBatch, answers: StringBatch) -> torch.Tensor:
        verdicts = self.verifier.check(
            questions.to_strings(self.question_codec), answers.to_strings(self.codec)
        )
        return VERIFIED_LOGIT * (2 * torch.tensor(verdicts, dtype=torch.float32) - 1)


Discriminator = NeuralDiscriminator | VerifierDiscriminator
