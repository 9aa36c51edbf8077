"""The built-in ``misspellings`` dataset (codespell's dictionary read backwards): its fixed split and parsing."""

import importlib.metadata
import sys

import pytest

from optional import needs_codespell
from retro.data import load_pairs
from retro.datasets import BUILTIN_DATASETS, codecs_for, misspellings, recommended_settings
from retro.errors import DataError, RetroError


def _codespell_version() -> str | None:
    try:
        return importlib.metadata.version("codespell")
    except importlib.metadata.PackageNotFoundError:
        return None


@pytest.fixture(scope="module")
def splits():
    return {split: misspellings.load(split) for split in misspellings.SPLITS}


@needs_codespell
@pytest.mark.skipif(
    _codespell_version() != misspellings.CODESPELL_VERSION,
    reason=f"the documented sizes are codespell {misspellings.CODESPELL_VERSION}'s (the extra pins it)",
)
def test_split_sizes_are_the_documented_ones(splits):
    words = {split: set(questions) for split, (questions, _) in splits.items()}
    assert (len(words["train"]), len(words["test"])) == (12_290, 1_376)
    assert (len(splits["train"][1]), len(splits["test"][1])) == (51_231, 5_991)


@needs_codespell
def test_split_is_by_word_and_fixed(splits):
    words = {split: set(questions) for split, (questions, _) in splits.items()}
    assert not words["train"] & words["test"]  # every misspelling of a word on one side
    # Fixed by a hash, never by process state: these are pinned.
    pinned = {"following": "test", "accommodate": "train", "separate": "train", "receive": "train"}
    assert {word: misspellings.split_of(word) for word in pinned} == pinned
    assert all(misspellings.split_of(word) == split for split, ws in words.items() for word in ws)


@needs_codespell
def test_known_entries(splits):
    words = misspellings.misspellings()
    assert "acommodate" in words["accommodate"] and "seperate" in words["separate"]
    assert len(words["following"]) == 113
    assert "cache" not in words or "aache" not in words["cache"]  # "aache->cache, ache,": unsure, left out
    assert "Achilles" not in words and "2nd" not in words  # not lower-case [a-z]+
    for questions, answers in splits.values():
        assert all(q.isascii() and q.isalpha() and q.islower() for q in set(questions))
        assert all(a.isascii() and a.isalpha() and a.islower() and a != q for q, a in zip(questions, answers))
        assert len(set(zip(questions, answers))) == len(answers)  # no pair twice


@needs_codespell
def test_spec_through_load_pairs(splits):
    pairs = load_pairs("builtin:misspellings:test")
    assert (pairs.questions, pairs.answers) == splits["test"]
    assert pairs.locations[5] == "builtin:misspellings:test#5"
    assert load_pairs("builtin:misspellings:train", n=50, seed=3) == load_pairs(
        "builtin:misspellings:train", n=50, seed=3
    )
    # Like a user's file: bytes for both sides, and the CLI's generic defaults (no recommendation).
    assert codecs_for("builtin:misspellings:train") is None
    assert recommended_settings("builtin:misspellings:train", "latent") == {}
    assert "misspellings" in BUILTIN_DATASETS


def test_unknown_split_is_a_one_line_error():
    with pytest.raises(DataError, match=r"^builtin:misspellings: unknown split 'dev'; splits: train, test$"):
        load_pairs("builtin:misspellings:dev")


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "codespell_lib", None)  # makes `import codespell_lib` raise ImportError
    misspellings.misspellings.cache_clear()
    misspellings._split_pairs.cache_clear()
    with pytest.raises(RetroError) as info:
        load_pairs("builtin:misspellings:train")
    misspellings.misspellings.cache_clear()
    misspellings._split_pairs.cache_clear()
    assert str(info.value) == (
        "builtin:misspellings needs the codespell package: pip install 'retro-imitators[misspellings]'"
    )
