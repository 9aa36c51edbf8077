"""(question, answer) datasets: JSONL and CSV files, synthetic-human draws and built-in datasets.

A data spec is a path to a ``.jsonl``/``.csv`` file whose records have ``question`` and ``answer`` fields,
``human:NAME`` (answers drawn from that built-in human), or ``builtin:NAME:SPLIT`` (a built-in dataset from
``retro.datasets``, e.g. ``builtin:cmudict-g2p:train``; its pair ``i`` is located as
``builtin:NAME:SPLIT#i``). Every problem is reported as one line naming the file and line.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from retro.errors import RetroError
from retro.text import Codec, CodecError

__all__ = ["Pairs", "load_pairs", "iter_pairs", "split_pairs", "DataError", "DEFAULT_HUMAN_PAIRS"]

DEFAULT_HUMAN_PAIRS = 1000
FIELDS = ("question", "answer")


class DataError(RetroError):
    """A dataset cannot be read."""


@dataclass(frozen=True)
class Pairs:
    """Questions and human answers, with where each came from (for error messages)."""

    questions: list[str]
    answers: list[str]
    locations: list[str]

    def __len__(self) -> int:
        return len(self.answers)

    def subset(self, indices: Sequence[int]) -> Pairs:
        return Pairs(
            [self.questions[i] for i in indices],
            [self.answers[i] for i in indices],
            [self.locations[i] for i in indices],
        )

    def validate(self, codec: Codec, max_length: int, question_codec: Codec | None = None) -> None:
        """Check that every question (by ``question_codec``, default ``codec``) and answer (by ``codec``) is
        encodable and no answer is longer than ``max_length``."""
        codecs = {"question": question_codec or codec, "answer": codec}
        for where, question, answer in zip(self.locations, self.questions, self.answers):
            for field, text in (("question", question), ("answer", answer)):
                try:
                    ids = codecs[field].encode(text)
                except CodecError as e:
                    raise DataError(f"{where}: {field}: {e}") from None
                if field == "answer" and len(ids) > max_length:
                    shown = text if len(text) <= 40 else text[:37] + "..."
                    raise DataError(
                        f"{where}: answer {shown!r} is {len(ids)} tokens long; max_length is {max_length} "
                        f"(train with --max-length {len(ids)} or more)"
                    )


def _decode_utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path}: line {line} is not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})"
        ) from None


def _checked_record(record: object, where: str) -> tuple[str, str]:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object with fields 'question' and 'answer'")
    values = []
    for name in FIELDS:
        if name not in record or record[name] is None:
            raise DataError(f"{where}: missing field {name!r}")
        if not isinstance(record[name], str):
            raise DataError(f"{where}: field {name!r} must be a string, got {type(record[name]).__name__}")
        values.append(record[name])
    return values[0], values[1]


def _read_jsonl(path: Path) -> Pairs:
    questions, answers, locations = [], [], []
    for number, line in enumerate(_decode_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
        question, answer = _checked_record(record, where)
        questions.append(question)
        answers.append(answer)
        locations.append(where)
    return Pairs(questions, answers, locations)


def _read_csv(path: Path) -> Pairs:
    reader = csv.DictReader(io.StringIO(_decode_utf8(path), newline=""))
    missing = [name for name in FIELDS if name not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path} line 1: missing column {missing[0]!r} (header: {reader.fieldnames})")
    questions, answers, locations = [], [], []
    for row in reader:
        where = f"{path} line {reader.line_num}"
        question, answer = _checked_record(row, where)
        questions.append(question)
        answers.append(answer)
        locations.append(where)
    return Pairs(questions, answers, locations)


def _utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file, read as a stream (one line in memory at a time)."""
    offset = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}: line {number} is not valid UTF-8 "
                    f"(byte 0x{raw[e.start]:02x} at offset {offset + e.start})"
                ) from None
            offset += len(raw)


def _stream_jsonl(path: Path) -> Iterator[tuple[str, str, str]]:
    for number, line in _utf8_lines(path):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
        yield (*_checked_record(record, where), where)


def _stream_csv(path: Path) -> Iterator[tuple[str, str, str]]:
    reader = csv.DictReader((line for _, line in _utf8_lines(path)))
    missing = [name for name in FIELDS if name not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path} line 1: missing column {missing[0]!r} (header: {reader.fieldnames})")
    for row in reader:
        where = f"{path} line {reader.line_num}"
        yield (*_checked_record(row, where), where)


def iter_pairs(spec: str, n: int | None = None, seed: int = 0) -> Iterator[tuple[str, str, str]]:
    """``(question, answer, location)`` of a data spec one at a time, as :func:`load_pairs` would list them.

    A JSONL or CSV file is read as a stream, so memory does not grow with its length (the other specs are
    built in memory, as they are generated). Errors are raised when the bad line is reached.
    """
    path = Path(spec)
    if spec.startswith(("human:", "builtin:")) or not path.is_file() or path.suffix.lower() not in STREAMED:
        pairs = load_pairs(spec, n, seed)
        yield from zip(pairs.questions, pairs.answers, pairs.locations)
        return
    if n is not None and n < 1:
        raise DataError(f"--n must be >= 1, got {n}")
    stream = _stream_csv(path) if path.suffix.lower() == ".csv" else _stream_jsonl(path)
    count = 0
    for count, pair in enumerate(stream, start=1):
        yield pair
        if n is not None and count >= n:
            return
    if count == 0:
        raise DataError(f"{spec}: no (question, answer) pairs")


STREAMED = (".csv", ".jsonl", ".json", ".ndjson")


def load_pairs(spec: str, n: int | None = None, seed: int = 0) -> Pairs:
    """Load a data spec (see module docstring).

    ``n`` keeps the first ``n`` pairs of a file, draws ``n`` from a human, or keeps a ``seed``-ed random ``n``
    of a built-in dataset (in dataset order; a larger ``n`` with the same seed keeps a superset).
    """
    if n is not None and n < 1:
        raise DataError(f"--n must be >= 1, got {n}")
    if spec.startswith("human:"):
        from retro.humans import make_human

        human = make_human(spec.split(":", 1)[1])
        questions, answers = human.draw(n or DEFAULT_HUMAN_PAIRS, seed)
        return Pairs(questions, answers, [f"{spec} (seed {seed}) pair {i}" for i in range(len(answers))])
    if spec.startswith("builtin:"):
        return _load_builtin(spec, n, seed)
    path = Path(spec)
    if not path.is_file():
        raise DataError(
            f"no data file at {spec!r} (expected a .jsonl or .csv file, human:NAME or builtin:NAME:SPLIT)"
        )
    if path.suffix.lower() == ".csv":
        pairs = _read_csv(path)
    elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        pairs = _read_jsonl(path)
    else:
        raise DataError(f"{spec}: unknown data format {path.suffix!r} (expected .jsonl or .csv)")
    if not len(pairs):
        raise DataError(f"{spec}: no (question, answer) pairs")
    return pairs.subset(range(min(n, len(pairs)))) if n is not None else pairs


def _load_builtin(spec: str, n: int | None, seed: int) -> Pairs:
    # The first n would be a biased slice (cmudict is alphabetical), so n picks a seeded sample instead.
    from retro.datasets import load_builtin

    parts = spec.split(":")
    if len(parts) != 3:
        raise DataError(f"{spec!r}: expected builtin:NAME:SPLIT, e.g. builtin:cmudict-g2p:train")
    questions, answers = load_builtin(parts[1], parts[2])
    indices: Sequence[int] = range(len(answers))
    if n is not None and n < len(answers):
        order = list(indices)
        random.Random(seed).shuffle(order)
        indices = sorted(order[:n])
    return Pairs(
        [questions[i] for i in indices], [answers[i] for i in indices], [f"{spec}#{i}" for i in indices]
    )


def split_pairs(pairs: Pairs, heldout_fraction: float = 0.1, seed: int = 0) -> tuple[Pairs, Pairs]:
    """A seeded random split into (train, held-out); at least one pair on each side."""
    if len(pairs) < 2:
        raise DataError("need at least 2 pairs to hold some out")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    cut = min(len(pairs) - 1, max(1, round(heldout_fraction * len(pairs))))
    return pairs.subset(sorted(order[cut:])), pairs.subset(sorted(order[:cut]))
