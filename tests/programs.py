"""Every built-in imitator and human, plus a custom imitator written the way a user would (shared by tests)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from retro.distributions import StringDistribution
from retro.humans import HUMANS, make_human
from retro.models import IMITATORS, Ensemble, Imitator, make_imitator, needs_base
from retro.nets import GRUDecoder, StringEncoder
from retro.text import AlphabetCodec, SymbolCodec


class CareImitator(Imitator):
    """A user's own imitator: a discrete "mood" and a continuous "care" latent, a GRU decoder."""

    name = "custom-care"

    def __init__(self, codec=None, max_length=8, hidden_dim=16):
        super().__init__(codec, max_length)
        self.remember_config(hidden_dim=hidden_dim)
        self.encoder = StringEncoder(self.codec.vocab_size, hidden_dim // 2)
        self.mood = torch.nn.Embedding(2, 4)
        self.decoder = GRUDecoder(self.codec.vocab_size, hidden_dim + 4 + 1, hidden_dim)

    def model(self, questions, answers=None):
        code = self.encoder(questions)
        with self.answers_plate(questions):
            mood = pyro.sample("mood", dist.Categorical(logits=torch.zeros(2, device=code.device)))
            care = pyro.sample("care", dist.Normal(torch.zeros((), device=code.device), 1.0))
            shape = torch.broadcast_shapes(code.shape[:-1], mood.shape, care.shape)
            context = torch.cat(
                [
                    code.expand(shape + code.shape[-1:]),
                    self.mood(mood).expand(shape + (4,)),
                    care.expand(shape)[..., None],
                ],
                -1,
            )
            return self.observe(
                StringDistribution(self.decoder, context, self.max_length, self.codec.eos), answers
            )


# A tiny codec per program for exhaustive enumeration, and questions it can encode.
TINY_ALPHABET = {
    "arithmetic": "0123456789+-=",
    "numbers": "0123456789abcdefghijklmnopqrstuvwxyz -",
    "typist": "abcdefghijklmnopqrstuvwxyz",
}
TINY_QUESTIONS = {"arithmetic": ["1+2", "3-5"], "numbers": ["7", "12"], "typist": ["go", "hi"]}


def tiny_program(name: str, max_length: int = 3):
    """(program, questions) over a tiny alphabet codec, small enough to enumerate every string.

    ``"imitator[decoder]"`` names a built-in imitator with another decoder; the attention variants also answer in
    a symbol codec (two-letter symbols) distinct from the question codec."""
    if name == "numbers":  # 38 symbols: keep the enumeration at 38^2 strings
        max_length = min(max_length, 2)
    if name in HUMANS:
        return make_human(name, AlphabetCodec(TINY_ALPHABET[name]), max_length), TINY_QUESTIONS[name]
    codec = AlphabetCodec("ab")
    if name == CareImitator.name:
        return CareImitator(codec, max_length), ["ab", "b"]
    if name == "ensemble":  # a discrete latent and an attention decoder (its memory) side by side
        options = dict(
            codec=SymbolCodec(["a", "bb"]), question_codec=codec, max_length=max_length, hidden_dim=16
        )
        members = [
            make_imitator("mixture", **options),
            make_imitator("seq2seq", decoder="attention", **options),
        ]
        return Ensemble(members), ["ab", "b"]
    imitator, _, decoder = name.rstrip("]").partition("[")
    options = {"decoder": decoder} if decoder else {}
    if decoder == "attention":
        options.update(codec=SymbolCodec(["a", "bb"]), question_codec=codec)
        codec = options.pop("codec")
    return make_imitator(imitator, codec=codec, max_length=max_length, hidden_dim=16, **options), ["ab", "b"]


VARIANTS = ["latent[transformer]", "latent[attention]", "mixture[attention]", "seq2seq[attention]"]
"""Built-in imitators with another decoder than their default."""
SMALL_IMITATORS = sorted(n for n in IMITATORS if not needs_base(n) and n != Ensemble.name)
"""Built-in imitators built from settings alone, with no pretrained base (the language-model ones have their tests
in tests/lm; an ensemble is built from its members, see ``tiny_program("ensemble")``)."""
PROGRAM_NAMES = SMALL_IMITATORS + VARIANTS + [Ensemble.name] + sorted(HUMANS) + [CareImitator.name]
