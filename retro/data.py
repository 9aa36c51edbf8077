"""(question, answer) datasets: JSONL and CSV files, synthetic-human draws and built-in datasets.

A data spec is a path to a ``.jsonl``/``.csv`` file whose records have ``question`` and ``answer`` fields,
``human:NAME`` (answers drawn from that built-in human), or ``builtin:NAME:SPLIT`` (a built-in dataset from
``retro.datasets``, e.g. ``builtin:cmudict-g2p:train``; its pair ``i`` is located as
``builtin:NAME:SPLIT#i``). Every problem is reported as one line naming the file and line.

Files are untrusted input. A reader returns pairs or raises :class:`DataError`, whatever the bytes: a UTF-8
byte-order mark (as spreadsheets write) is skipped; JSONL records are split at newlines only, so a string holding
U+2028, U+2029 or U+0085 stays whole; a lone surrogate (``"\ud800"``, not text), an over-long integer, deep nesting,
a CSV row with more fields than its header, a duplicated ``question``/``answer`` column and a question longer than
its bound are errors. Text is taken as it is, never normalized: the NFC and NFD forms of a string are different
answers (different bytes, different log p).
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from retro.datasets import load_builtin
from retro.errors import DataError
from retro.memory import check_allocation
from retro.text import Codec, CodecError

__all__ = [
    "Pairs",
    "load_pairs",
    "split_pairs",
    "data_file",
    "DataError",
    "DEFAULT_HUMAN_PAIRS",
    "DEFAULT_MAX_QUESTION_LENGTH",
]

DEFAULT_HUMAN_PAIRS = 1000
DEFAULT_MAX_QUESTION_LENGTH = 4096  # tokens; a program's ``max_question_length`` attribute overrides it
FIELDS = ("question", "answer")
STREAMED = (".csv", ".jsonl", ".json", ".ndjson")  # file suffixes read as a stream of records
BYTES_PER_DRAWN_PAIR = 200  # a rough size of one drawn (question, answer) pair in memory, for the limit check


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

    def validate(
        self,
        codec: Codec,
        max_length: int,
        question_codec: Codec | None = None,
        max_question_length: int | None = None,
    ) -> None:
        """Check that every question (by ``question_codec``, default ``codec``) and answer (by ``codec``) is
        encodable, no answer is longer than ``max_length`` and no question longer than ``max_question_length``
        tokens (default :data:`DEFAULT_MAX_QUESTION_LENGTH`)."""
        codecs = {"question": question_codec or codec, "answer": codec}
        limits = {"question": max_question_length or DEFAULT_MAX_QUESTION_LENGTH, "answer": max_length}
        names = {"question": "the question length bound", "answer": "max_length"}
        for where, question, answer in zip(self.locations, self.questions, self.answers):
            for field, text in (("question", question), ("answer", answer)):
                try:
                    ids = codecs[field].encode(text)
                except CodecError as e:
                    raise DataError(f"{where}: {field}: {e}") from None
                if len(ids) > limits[field]:
                    shown = text if len(text) <= 40 else text[:37] + "..."
                    hint = f" (train with --max-length {len(ids)} or more)" if field == "answer" else ""
                    raise DataError(
                        f"{where}: {field} {shown!r} is {len(ids)} tokens long; {names[field]} is "
                        f"{limits[field]}{hint}"
                    )


def _checked_text(value: str, where: str, name: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate: valid JSON escapes, but not text
        raise DataError(
            f"{where}: field {name!r} holds a lone surrogate U+{ord(value[e.start]):04X} at position {e.start} "
            "(not text)"
        ) from None
    return value


def _checked_record(record: object, where: str) -> tuple[str, str]:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object with fields 'question' and 'answer'")
    values = []
    for name in FIELDS:
        if name not in record or record[name] is None:
            raise DataError(f"{where}: missing field {name!r}")
        if not isinstance(record[name], str):
            raise DataError(f"{where}: field {name!r} must be a string, got {type(record[name]).__name__}")
        values.append(_checked_text(record[name], where, name))
    return values[0], values[1]


def _utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file, read as a stream (one line in memory at a time). Lines end at
    ``\\n`` only (``str.splitlines`` would also cut at U+2028, U+2029 and U+0085, which JSON strings may hold); a
    leading byte-order mark is skipped."""
    offset = 0
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                skip = 3 if number == 1 and raw.startswith(b"\xef\xbb\xbf") else 0
                try:
                    yield number, raw[skip:].decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(
                        f"{path}: line {number} is not valid UTF-8 "
                        f"(byte 0x{raw[skip + e.start]:02x} at offset {offset + skip + e.start})"
                    ) from None
                offset += len(raw)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def _stream_jsonl(path: Path) -> Iterator[tuple[str, str, str]]:
    for number, line in _utf8_lines(path):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
        except (ValueError, RecursionError) as e:  # an integer over Python's digit limit; too deep a nesting
            reason = str(e).splitlines()[0] if isinstance(e, ValueError) else "nested too deeply"
            raise DataError(f"{where}: malformed JSON ({reason})") from None
        yield (*_checked_record(record, where), where)


def _stream_csv(path: Path) -> Iterator[tuple[str, str, str]]:
    reader = csv.DictReader(line for _, line in _utf8_lines(path))
    try:
        header = reader.fieldnames or []
        missing = [name for name in FIELDS if name not in header]
        if missing:
            raise DataError(f"{path} line 1: missing column {missing[0]!r} (header: {header})")
        duplicated = [name for name in FIELDS if header.count(name) > 1]
        if duplicated:
            raise DataError(
                f"{path} line 1: column {duplicated[0]!r} appears {header.count(duplicated[0])} times"
            )
        for row in reader:
            where = f"{path} line {reader.line_num}"
            if None in row:  # DictReader's key for the values beyond the header
                raise DataError(
                    f"{where}: {len(header) + len(row[None])} fields, but the header has {len(header)}"
                )
            yield (*_checked_record(row, where), where)
    except csv.Error as e:
        raise DataError(f"{path} line {reader.line_num}: malformed CSV ({e})") from None


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


def data_file(spec: str) -> Path | None:
    """The file a data spec names, or ``None`` for ``human:NAME`` and ``builtin:NAME:SPLIT``."""
    return None if spec.startswith(("human:", "builtin:")) else Path(spec)


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
        check_allocation((n or DEFAULT_HUMAN_PAIRS) * BYTES_PER_DRAWN_PAIR, f"drawing {n} pairs from {spec}")
        questions, answers = human.draw(n or DEFAULT_HUMAN_PAIRS, seed)
        return Pairs(questions, answers, [f"{spec} (seed {seed}) pair {i}" for i in range(len(answers))])
    if spec.startswith("builtin:"):
        return _load_builtin(spec, n, seed)
    path = Path(spec)
    if not path.is_file():
        raise DataError(
            f"no data file at {spec!r} (expected a .jsonl or .csv file, human:NAME or builtin:NAME:SPLIT)"
        )
    if path.suffix.lower() not in STREAMED:
        raise DataError(f"{spec}: unknown data format {path.suffix!r} (expected .jsonl or .csv)")
    rows = list(iter_pairs(spec, n, seed))
    return Pairs(*(list(column) for column in zip(*rows)))


def _load_builtin(spec: str, n: int | None, seed: int) -> Pairs:
    # The first n would be a biased slice (cmudict is alphabetical), so n picks a seeded sample instead.
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


def split_pairs(
    pairs: Pairs, heldout_fraction: float = 0.1, seed: int = 0, max_heldout: int | None = None
) -> tuple[Pairs, Pairs]:
    """A seeded random split into (train, held-out): ``heldout_fraction`` of the pairs, at most ``max_heldout``,
    at least one pair on each side."""
    if len(pairs) < 2:
        raise DataError("need at least 2 pairs to hold some out")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    cut = round(heldout_fraction * len(pairs))
    cut = min(len(pairs) - 1, max(1, cut if max_heldout is None else min(cut, max_heldout)))
    return pairs.subset(sorted(order[cut:])), pairs.subset(sorted(order[:cut]))
