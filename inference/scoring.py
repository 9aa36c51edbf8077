"""Scoring many answers: read as a stream, shared across processes, each finished chunk written as it goes.

:func:`score_chunks` cuts a stream of (question, answer) pairs into chunks of ``chunk_size`` answers; in a
data-parallel run (:mod:`retro.distributed`) each round of ``R`` consecutive chunks is shared by the ``R`` ranks
(chunk ``k`` of a round to rank ``k``), and rank 0 receives the records back in input order. A chunk's random
draws are keyed by the seed and the index of its first answer, never by the rank that scores it, so the output
is the same (byte for byte) whatever the number of processes.

:func:`score_to_file` writes JSONL or CSV through ``OUT.partial``: after each round the new lines are flushed to
disk and then a small ledger ``OUT.partial.json`` records the settings, the answers done and the bytes written
(replaced atomically). A run killed at any moment resumes (``resume=True``) from its last finished round: the
file is cut back to the ledger's length and the input stream skips the answers done, so no answer is lost or
written twice. At the end ``OUT.partial`` is renamed to ``OUT`` and the ledger removed. Memory stays flat in the
number of answers: one round of pairs and records, and a running summary.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from retro.distributed import SINGLE, World
from retro.errors import RetroError
from retro.inference.results import AnswerEstimate, Summary, unreliable
from retro.inference.train import random_key

__all__ = [
    "ChunkScorer",
    "RunningSummary",
    "score_chunks",
    "map_chunks",
    "score_to_file",
    "render_records",
    "record_from_dict",
    "DEFAULT_CHUNK_SIZE",
    "LEDGER_FORMAT",
]

DEFAULT_CHUNK_SIZE = 256
LEDGER_FORMAT = "retro-score-ledger/1"
STREAMED_FORMATS = ("jsonl", "csv")

ChunkScorer = Callable[[list[str], list[str], int], Sequence[AnswerEstimate]]
"""``score(questions, answers, first_index)``: the records of one chunk whose first answer is answer
``first_index`` of the input (to key its random numbers)."""


class RunningSummary:
    """:func:`~retro.inference.results.summarize` computed one record at a time (constant memory)."""

    def __init__(self) -> None:
        self.method = ""
        self.count = 0
        self.mean = 0.0
        self.squares = 0.0  # Welford: sum of squared deviations from the running mean
        self.finite = True
        self.mc_variance = 0.0
        self.khat_sum, self.khat_count = 0.0, 0
        self.unreliable = 0

    def add(self, record: AnswerEstimate) -> None:
        self.method = self.method or record.method
        self.count += 1
        value = record.log_prob
        if not math.isfinite(value):
            self.finite = False
        if self.finite:
            delta = value - self.mean
            self.mean += delta / self.count
            self.squares += delta * (value - self.mean)
        else:
            self.mean = value if self.count == 1 or not math.isfinite(self.mean) else self.mean + value
        if math.isfinite(record.stderr):
            self.mc_variance += record.stderr**2
        if not math.isnan(record.khat):
            self.khat_sum, self.khat_count = self.khat_sum + record.khat, self.khat_count + 1
        self.unreliable += unreliable(record)

    def summary(self) -> Summary:
        n = self.count
        if n == 0:
            raise RetroError("no answers were scored")
        if n > 1:
            spread = self.squares / (n - 1) / n if self.finite else float("nan")
        else:
            spread = 0.0
        mc = math.sqrt(self.mc_variance) / n
        return Summary(
            method=self.method,
            num_answers=n,
            log_prob_mean=self.mean,
            stderr=math.sqrt(spread + mc**2),
            mc_stderr=mc,
            khat_mean=self.khat_sum / self.khat_count if self.khat_count else float("nan"),
            unreliable=self.unreliable,
        )


def _rounds(
    items: Iterable[Any], chunk_size: int, world: World, skip: int
) -> Iterator[tuple[int, list[Any]]]:
    """Per round of ``world.size`` chunks: (index of this rank's chunk's first item, its items). Every rank reads
    the whole stream (cheap next to the work) and keeps its own chunk, empty at the very end."""
    stream = itertools.islice(iter(items), skip, None)
    start = skip
    while True:
        round_items = list(itertools.islice(stream, chunk_size * world.size))
        if not round_items:
            return
        yield (
            start + world.rank * chunk_size,
            round_items[world.rank * chunk_size : (world.rank + 1) * chunk_size],
        )
        start += len(round_items)


def _gather(world: World, results: list[Any]) -> list[Any]:
    """Rank 0: every rank's results of this round, in rank (= input) order; elsewhere an empty list."""
    if world.size == 1:
        return results
    import torch.distributed as dist

    gathered: list[Any] | None = [None] * world.size if world.is_main else None
    dist.gather_object(results, gathered, dst=0)
    return [r for part in gathered for r in part] if gathered is not None else []


def map_chunks(
    work: Callable[[list[Any], int], list[Any]],
    items: Iterable[Any],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    world: World = SINGLE,
    skip: int = 0,
) -> Iterator[list[Any]]:
    """``work(chunk, index of its first item)`` over ``items`` cut into chunks, the chunks of each round shared by
    the ranks; yields each round's results (one per item, in input order) on rank 0 and ``[]`` elsewhere.

    Every rank must iterate to the end (the others work in between). ``skip`` items at the start are left out (a
    resumed run); chunk boundaries stay those of the whole input. The results travel to rank 0 pickled by
    ``torch.distributed`` between the run's own processes (plain values: strings, numbers, dicts).
    """
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise RetroError(f"the chunk size must be a positive integer, got {chunk_size}")
    if skip % chunk_size:
        raise RetroError(f"cannot resume after {skip} answers: not a whole number of chunks of {chunk_size}")
    for first, chunk in _rounds(items, chunk_size, world, skip):
        results = work(chunk, first) if chunk else []
        if len(results) != len(chunk):
            raise RetroError(f"a chunk of {len(chunk)} items gave {len(results)} results")
        yield _gather(world, list(results))


def score_chunks(
    score: ChunkScorer,
    pairs: Iterable[tuple[str, str, Any]],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    seed: int = 0,
    world: World = SINGLE,
    skip: int = 0,
) -> Iterator[list[dict[str, Any]]]:
    """Score ``pairs`` (``(question, answer, location)``, e.g. from :func:`retro.data.iter_pairs`) chunk by chunk
    with :func:`map_chunks`: yields each round's records as dicts (``AnswerEstimate.to_dict()``), in input order,
    on rank 0. Before a chunk is scored torch's generator is seeded from ``(seed, index of its first answer)``
    (an estimator from the registry keys each answer's draws by ``seed`` and its index anyway)."""

    def work(chunk: list[tuple[str, str, Any]], first: int) -> list[dict[str, Any]]:
        torch.manual_seed(random_key(seed, "chunk", first))
        questions, answers = [p[0] for p in chunk], [p[1] for p in chunk]
        return [r.to_dict() for r in score(questions, answers, first)]

    return map_chunks(work, pairs, chunk_size, world, skip)


def render_records(records: list[dict[str, Any]], fmt: str, header: bool) -> str:
    """JSON lines, or CSV rows (with the header row when ``header``)."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt != "csv":
        raise RetroError(f"cannot stream the format {fmt!r}; use one of {', '.join(STREAMED_FORMATS)}")
    if not records:
        return ""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(records[0]), lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(records)
    return text.getvalue()


def _ledger_path(partial: Path) -> Path:
    return partial.with_name(partial.name + ".json")


def _write_ledger(partial: Path, settings: dict[str, Any], answers: int, size: int) -> None:
    ledger = _ledger_path(partial)
    temporary = ledger.with_name(ledger.name + ".tmp")
    body = {"format": LEDGER_FORMAT, "settings": settings, "answers": answers, "bytes": size}
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(body, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, ledger)


def _read_ledger(partial: Path, settings: dict[str, Any]) -> tuple[int, int]:
    """``(answers done, bytes written)`` of the interrupted run at ``partial``, after checking its settings."""
    ledger = _ledger_path(partial)
    try:
        body = json.loads(ledger.read_text(encoding="utf-8"))
        if body.get("format") != LEDGER_FORMAT:
            raise ValueError(f"format {body.get('format')!r}")
        saved, answers, size = body["settings"], int(body["answers"]), int(body["bytes"])
    except FileNotFoundError:
        raise RetroError(f"nothing to resume: no interrupted scoring run at {partial}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise RetroError(f"{ledger}: not a retro scoring ledger ({e})") from None
    changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
    if changed:
        shown = ", ".join(f"{k} {saved.get(k)!r} -> {settings.get(k)!r}" for k in changed)
        raise RetroError(f"--resume with other settings than the interrupted run ({shown})")
    if not partial.is_file() or partial.stat().st_size < size:
        raise RetroError(f"{partial} is shorter than its ledger says ({size} bytes): cannot resume")
    return answers, size


def score_to_file(
    score: ChunkScorer,
    pairs: Iterable[tuple[str, str, Any]],
    out: str | os.PathLike,
    fmt: str,
    settings: dict[str, Any],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    seed: int = 0,
    resume: bool = False,
    world: World = SINGLE,
) -> Summary | None:
    """Score ``pairs`` into ``out`` (JSONL or CSV) as described in the module docstring; rank 0 returns the
    summary (the other ranks ``None``).

    ``settings`` (JSON-ready: what determines the records, e.g. model, data, method, particles, seed) is kept in
    the ledger; ``resume=True`` continues an interrupted run with the same settings, and other settings are a
    one-line :class:`~retro.errors.RetroError`.
    """
    if fmt not in STREAMED_FORMATS:
        raise RetroError(f"cannot stream the format {fmt!r}; use one of {', '.join(STREAMED_FORMATS)}")
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    settings = {**settings, "format": fmt, "chunk_size": chunk_size, "seed": seed}
    done, size = _read_ledger(partial, settings) if resume else (0, 0)
    summary = RunningSummary()
    if resume:  # the running summary restarts from the records already written
        for record in _records_in(partial, fmt, size):
            summary.add(record)
    file = None
    if world.is_main:
        file = open(partial, "r+b" if resume else "wb")
        file.truncate(size)
        file.seek(size)
        _write_ledger(partial, settings, done, size)
    try:
        for records in score_chunks(score, pairs, chunk_size, seed, world, skip=done):
            if file is None:
                continue
            file.write(render_records(records, fmt, header=size == 0).encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
            size, done = file.tell(), done + len(records)
            _write_ledger(partial, settings, done, size)
            for record in records:
                summary.add(record_from_dict(record))
    finally:
        if file is not None:
            file.close()
    if not world.is_main:
        return None
    if done == 0:
        raise RetroError("no answers were scored")
    os.replace(partial, out)
    _ledger_path(partial).unlink()
    return summary.summary()


def record_from_dict(row: dict[str, Any]) -> AnswerEstimate:
    """An :class:`AnswerEstimate` from its ``to_dict()`` (as written to JSONL, or read back from CSV)."""

    def number(key: str) -> float:
        value = row.get(key)
        return float("nan") if value is None or value == "" else float(value)

    return AnswerEstimate(
        question=row["question"],
        answer=row["answer"],
        log_prob=number("log_prob"),
        stderr=number("stderr"),
        ess=number("ess"),
        khat=number("khat"),
        num_particles=int(row["num_particles"]),
        method=row["method"],
        kind=row["kind"],
    )


def _records_in(partial: Path, fmt: str, size: int) -> Iterator[AnswerEstimate]:
    """The records already written to ``partial`` (its first ``size`` bytes), read back as a stream."""
    with open(partial, "rb") as f:
        text = io.TextIOWrapper(io.BufferedReader(_Limited(f, size)), encoding="utf-8", newline="")
        rows = (json.loads(line) for line in text) if fmt == "jsonl" else csv.DictReader(text)
        for row in rows:
            yield record_from_dict(row)


class _Limited(io.RawIOBase):
    """The first ``limit`` bytes of a binary file."""

    def __init__(self, f, limit: int):
        self.f, self.left = f, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            return 0
        data = self.f.read(min(len(buffer), self.left))
        buffer[: len(data)] = data
        self.left -= len(data)
        return len(data)
