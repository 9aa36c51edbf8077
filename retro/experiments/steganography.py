"""Experiment 1: a steganographic imitator fools any discriminator, but not retrodiction.

The human answers each question with one of ``CANDIDATES`` (16) words, uniformly (the words depend on the
question). The steganographic imitator hides ``b`` bits per answer: a secret key orders a question's words by a
keyed hash (a pseudo-random permutation nobody without the key can reproduce) and cuts that order into ``2^b``
equal blocks; to send message ``m`` it answers uniformly within block ``m``. Messages are uniform (as encrypted
payloads are), so *without the key* its answers have exactly the human's distribution: a discriminator can only
guess. With the key, block ``m`` is read back from the answer. With probability ``smoothing`` it answers like the
human instead (so no human answer has probability 0), which costs decoding accuracy
``1 - smoothing + smoothing / 2^b``.

Scored by retrodiction, the imitator is judged on the human's actual answers under the message it carries: the
human's answer falls in the message's block only with probability ``2^-b``, so the mean log p drops, relative to
the honest imitator, by the KL divergence from the human,

    KL = -(2^-b log((1 - s) 2^b + s) + (1 - 2^-b) log s),

which grows as the channel gets more reliable (s -> 0) and is about ``b ln 2`` or more once decoding is reliable;
without smoothing, a fraction ``1 - 2^-b`` of human answers have probability 0 (log p = -inf).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
from dataclasses import asdict, dataclass
from importlib import resources

import torch

from retro.discriminators import NeuralDiscriminator
from retro.errors import RetroError
from retro.finite import FiniteProgram
from retro.inference.exact import exact
from retro.inference.two_sample import classifier_two_sample_test

__all__ = [
    "CANDIDATES",
    "HonestHuman",
    "StegoImitator",
    "StegoRow",
    "expected_drop",
    "run_steganography",
]

CANDIDATES = 16  # equally likely human answers per question; at most log2(16) = 4 hidden bits


def _words() -> list[str]:
    text = resources.files("retro.humans").joinpath("words.txt").read_text(encoding="utf-8")
    return sorted({w for w in text.split() if w.isalpha()})


WORDS = _words()


def _digest(key: bytes, *parts: str) -> bytes:
    return hmac.new(key, "\0".join(parts).encode(), hashlib.sha256).digest()


def question_words(question: str) -> list[str]:
    """The human's ``CANDIDATES`` equally likely answers to ``question`` (fixed, public)."""
    rng = random.Random(hashlib.blake2b(question.encode(), digest_size=8).digest())
    return rng.sample(WORDS, CANDIDATES)


class HonestHuman(FiniteProgram):
    """Answers uniformly among the question's words: the human, and the honest imitator."""

    def __init__(self, max_length: int = 16):
        super().__init__(lambda q: [(w, 0.0) for w in question_words(q)], max_length=max_length)


class StegoImitator(FiniteProgram):
    """Hides ``bits`` bits per answer with ``key`` (see the module docstring); ``message(question)`` is the
    payload it carries for that question (secret bits assigned per question from ``payload_seed``)."""

    def __init__(self, bits: int, key: bytes, smoothing: float, payload_seed: int = 0, max_length: int = 16):
        if not 0 <= bits <= int(math.log2(CANDIDATES)):
            raise RetroError(f"steganography: bits must be in 0..{int(math.log2(CANDIDATES))}, got {bits}")
        if not 0.0 <= smoothing <= 1.0:
            raise RetroError(f"steganography: smoothing must be in [0, 1], got {smoothing}")
        self.bits, self.key, self.smoothing, self.payload_seed = bits, key, smoothing, payload_seed
        self.block = CANDIDATES >> bits
        super().__init__(self._candidates, max_length=max_length)

    def message(self, question: str) -> int:
        digest = hashlib.blake2b(f"{self.payload_seed}\0{question}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % (1 << self.bits)

    def keyed_order(self, question: str) -> list[str]:
        return sorted(question_words(question), key=lambda w: _digest(self.key, question, w))

    def decode(self, question: str, answer: str) -> int | None:
        """The message read from ``answer`` with the key (``None`` if it is not one of the question's words)."""
        order = self.keyed_order(question)
        return order.index(answer) // self.block if answer in order else None

    def _candidates(self, question: str):
        order, m = self.keyed_order(question), self.message(question)
        inside = set(order[m * self.block : (m + 1) * self.block])
        s = self.smoothing
        return [
            (
                w,
                math.log((1 - s) / self.block * (w in inside) + s / CANDIDATES)
                if (s > 0 or w in inside)
                else -math.inf,
            )
            for w in order
        ]


def expected_drop(bits: int, smoothing: float) -> float:
    """KL(human || stego imitator) in nats: the expected drop of log p per human answer."""
    share = 2.0**-bits
    if bits == 0:
        return 0.0
    if smoothing == 0:
        return math.inf
    return -(share * math.log((1 - smoothing) / share + smoothing) + (1 - share) * math.log(smoothing))


@dataclass(frozen=True)
class StegoRow:
    bits: int
    smoothing: float
    disc_accuracy: float
    disc_ci_low: float
    disc_ci_high: float
    decode_accuracy: float
    log_prob_mean: float
    honest_log_prob_mean: float
    log_prob_drop_nats: float
    log_prob_drop_stderr: float
    expected_drop_nats: float
    bits_ln2: float
    unsmoothed_impossible_fraction: float

    def to_dict(self) -> dict:
        return asdict(self)


def run_steganography(
    bits: tuple[int, ...] = (0, 1, 2, 3, 4),
    smoothing: float = 0.02,
    num_train: int = 2000,
    num_test: int = 1000,
    disc_steps: int = 300,
    seed: int = 0,
    progress: bool = False,
) -> list[StegoRow]:
    """One row per number of hidden bits: discriminator accuracy (two-sample test on ``2 * num_train`` training
    and ``2 * num_test`` test pairs), decoding accuracy and the retrodiction score on ``num_test`` human answers."""
    for b in bits:  # every setting is checked before any work
        StegoImitator(b, b"", smoothing)
    if num_train < 2 or num_test < 2:
        raise RetroError(
            f"steganography: need at least 2 training and 2 test pairs, got {num_train}, {num_test}"
        )
    rng = random.Random(seed)
    key = rng.randbytes(32)
    questions = [f"q{rng.randrange(10**6):06d}" for _ in range(num_train + num_test)]
    test_questions = questions[num_train:]
    human = HonestHuman()
    torch.manual_seed(seed)
    human_answers = [a[0] for a in human.sample(questions)]
    honest = exact(human, test_questions, human_answers[num_train:]).records
    honest_mean = sum(r.log_prob for r in honest) / num_test
    rows = []
    for b in bits:
        stego = StegoImitator(b, key, smoothing, payload_seed=seed)
        stego_answers = [a[0] for a in stego.sample(questions)]
        decoded = [stego.decode(q, a) == stego.message(q) for q, a in zip(questions, stego_answers)]
        q_batch = human.encode_questions(questions)
        pairs_h = (q_batch, human.encode_answers(human_answers))
        pairs_s = (q_batch, human.encode_answers(stego_answers))
        test = classifier_two_sample_test(
            pairs_h,
            pairs_s,
            lambda: NeuralDiscriminator(human.codec, human.max_length),
            train_fraction=num_train / len(questions),
            steps=disc_steps,
            seed=seed,
            progress=progress,
        )
        scored = exact(stego, test_questions, human_answers[num_train:]).records
        drops = torch.tensor([h.log_prob - s.log_prob for h, s in zip(honest, scored)], dtype=torch.float64)
        unsmoothed = exact(
            StegoImitator(b, key, 0.0, payload_seed=seed), test_questions, human_answers[num_train:]
        ).records
        rows.append(
            StegoRow(
                bits=b,
                smoothing=smoothing,
                disc_accuracy=test.accuracy,
                disc_ci_low=test.ci_low,
                disc_ci_high=test.ci_high,
                decode_accuracy=sum(decoded) / len(decoded),
                log_prob_mean=honest_mean - float(drops.mean()),
                honest_log_prob_mean=honest_mean,
                log_prob_drop_nats=float(drops.mean()),
                log_prob_drop_stderr=float(drops.std() / math.sqrt(len(drops))),
                expected_drop_nats=expected_drop(b, smoothing),
                bits_ln2=b * math.log(2),
                unsmoothed_impossible_fraction=sum(math.isinf(r.log_prob) for r in unsmoothed) / num_test,
            )
        )
    return rows
