import json

import pytest

from retro.data import DataError, load_pairs, split_pairs
from retro.errors import RetroError
from retro.text import AlphabetCodec, ByteCodec


def write(path, text, mode="w"):
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def test_jsonl_and_csv(tmp_path):
    rows = [{"question": "2+2", "answer": "4"}, {"question": "q, with comma", "answer": 'a "quoted"'}]
    jsonl = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    csv_path = write(tmp_path / "d.csv", 'question,answer\n2+2,4\n"q, with comma","a ""quoted"""\n')
    for spec in (jsonl, csv_path):
        pairs = load_pairs(spec)
        assert pairs.questions == ["2+2", "q, with comma"] and pairs.answers == ["4", 'a "quoted"']


def test_human_spec_is_seeded():
    a, b = load_pairs("human:typist", n=5, seed=3), load_pairs("human:typist", n=5, seed=3)
    assert a.answers == b.answers and len(a) == 5


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (
            b'{"question": "a", "answer": "b"}\n{"question": "c", "answer": "\xff"}\n',
            "d.jsonl",
            r"line 2 is not valid UTF-8",
        ),
        (
            '{"question": "a", "answer": "b"}\n{"question": "a", answer}\n',
            "d.jsonl",
            r"line 2: malformed JSON",
        ),
        ('{"question": "a"}\n', "d.jsonl", r"line 1: missing field 'answer'"),
        ('{"question": "a", "answer": 3}\n', "d.jsonl", r"line 1: field 'answer' must be a string"),
        ("question,reply\na,b\n", "d.csv", r"missing column 'answer'"),
        ("q\n", "d.txt", r"unknown data format"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, content, name, message):
    path = write(tmp_path / name, content, "wb" if isinstance(content, bytes) else "w")
    with pytest.raises(DataError, match=message) as info:
        load_pairs(path)
    assert "\n" not in str(info.value) and name in str(info.value)


def test_missing_file_and_unknown_human():
    with pytest.raises(DataError, match="no data file"):
        load_pairs("nope.jsonl")
    with pytest.raises(RetroError, match="unknown human 'nobody'; built-in humans: arithmetic"):
        load_pairs("human:nobody")


def test_validation_names_the_line(tmp_path):
    path = write(
        tmp_path / "d.jsonl", '{"question": "a", "answer": "ok"}\n{"question": "b", "answer": "toolong"}\n'
    )
    with pytest.raises(
        DataError, match=r"d.jsonl line 2: answer 'toolong' is 7 tokens long; max_length is 4"
    ):
        load_pairs(path).validate(ByteCodec(), 4)
    with pytest.raises(DataError, match=r"line 1: answer: character 'o' at position 0"):
        load_pairs(path).validate(AlphabetCodec("abk"), 10)


def test_split_is_deterministic_and_disjoint():
    pairs = load_pairs("human:arithmetic", n=50, seed=1)
    train, heldout = split_pairs(pairs, 0.2, seed=4)
    assert len(train) == 40 and len(heldout) == 10
    assert set(train.locations).isdisjoint(heldout.locations)
    assert split_pairs(pairs, 0.2, seed=4)[1].locations == heldout.locations
