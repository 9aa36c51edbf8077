"""``misspellings``: an English word -> a misspelling of it that people wrote.

Question = a correctly spelled word, answer = one misspelling of it (``"following"`` -> ``"folowing"``,
``"follwoing"``, ... : one pair per misspelling, up to 113 for one word). The pairs come from the dictionary of
the optional ``codespell`` package (``codespell_lib/data/dictionary.txt``, lines ``misspelling->correction``):
misspellings collected from Wikipedia's lists of common misspellings and from typos found in source code. Its
code is GPL-2.0, the dictionary CC BY-SA 3.0 (a derivative work of English Wikipedia); nothing of it is copied
here, we read the file from the installed package. Kept: lines with a single correction (a misspelling whose
intended word codespell is unsure of, ``aache->cache, ache,``, is left out) where both words are lower-case
``[a-z]+`` (no names, acronyms, digits or phrases). codespell 2.4.3 (the version the ``misspellings`` extra
pins: each release edits the dictionary) gives 12,290 train / 1,376 test words, 51,231 / 5,991 pairs.

The split is by a hash of the word, so all misspellings of a word land on the same side and the test words are
words never seen in training. No codecs are named: questions and answers are UTF-8 bytes, as for a user's file.
"""

from __future__ import annotations

import functools
import hashlib
import re

from retro.datasets.word_splits import SPLITS, check_split, split_pairs
from retro.errors import DataError

__all__ = ["SPLITS", "CODESPELL_VERSION", "INSTALL_HINT", "split_of", "misspellings", "load"]

CODESPELL_VERSION = "2.4.3"
"""The codespell release whose dictionary gives the documented split sizes."""
INSTALL_HINT = "builtin:misspellings needs the codespell package: pip install 'retro-imitators[misspellings]'"
_WORD = re.compile(r"[a-z]+")
_SALT = "misspellings-v1"
_TEST_PERCENT = 10


def split_of(word: str) -> str:
    """``"test"`` for about 10% of words (a fixed hash, so the split never changes), else ``"train"``."""
    digest = hashlib.blake2b((_SALT + word).encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 100 < _TEST_PERCENT else "train"


def _dictionary_text() -> str:
    try:
        from importlib.resources import files

        return (files("codespell_lib") / "data" / "dictionary.txt").read_text(encoding="utf-8")
    except (ImportError, FileNotFoundError):
        raise DataError(INSTALL_HINT) from None


@functools.cache
def misspellings() -> dict[str, tuple[str, ...]]:
    """Every kept word -> its misspellings, in dictionary order (parsed once).

    A line is ``misspelling->correction``, or ``misspelling->c1, c2[, reason]`` when codespell is unsure
    which word was meant (codespell's own reading: a comma makes the line ambiguous); only the first kind is
    kept, and only where both words are ``[a-z]+``.
    """
    result: dict[str, list[str]] = {}
    for line in _dictionary_text().splitlines():
        misspelling, arrow, correction = line.partition("->")
        correction = correction.strip()
        if not arrow or "," in correction:
            continue
        if _WORD.fullmatch(misspelling) and _WORD.fullmatch(correction) and misspelling != correction:
            seen = result.setdefault(correction, [])
            if misspelling not in seen:
                seen.append(misspelling)
    return {word: tuple(wrong) for word, wrong in result.items()}


@functools.cache
def _split_pairs(split: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return split_pairs(misspellings(), split_of, split)


def load(split: str) -> tuple[list[str], list[str]]:
    """(questions, answers) of ``split`` (``"train"`` or ``"test"``), in the order words first occur."""
    check_split("misspellings", split)
    questions, answers = _split_pairs(split)
    return list(questions), list(answers)
