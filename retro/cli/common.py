"""What several commands share: loading ``--model`` and ``--data`` specs, seeding, writing records."""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections.abc import Iterable
from typing import Any, NamedTuple, TextIO

import torch

from retro.data import Pairs, load_pairs
from retro.errors import RetroError
from retro.program import StringProgram

__all__ = [
    "LoadedModel",
    "load_model",
    "load_data",
    "write_records",
    "add_seed",
    "add_base",
    "seed_everything",
    "json_ready",
    "printable",
    "FORMATS",
]

FORMATS = ("jsonl", "csv", "table")


class LoadedModel(NamedTuple):
    program: StringProgram
    guide: Any  # AmortizedGuide or None
    spec: str
    info: dict | None = None  # what training recorded (data spec, settings), for trained models


def load_model(spec: str, device: str = "cpu", base: str | None = None) -> LoadedModel:
    """``--model``: a directory written by ``retro train``, or ``human:NAME``; ``base``: ``--base``, the base model
    directory a language-model imitator was trained on (its checkpoint never names it)."""
    if spec.startswith("human:"):
        from retro.humans import make_human

        return LoadedModel(make_human(spec.split(":", 1)[1]).to(device), None, spec)
    from retro.inference.trained import load_trained

    trained = load_trained(spec, device, base=base)
    return LoadedModel(trained.imitator, trained.guide, spec, trained.info)


def load_data(spec: str, program: StringProgram, n: int | None, seed: int) -> Pairs:
    """``--data`` checked against the model's codec and maximum length (errors name the line)."""
    pairs = load_pairs(spec, n=n, seed=seed)
    pairs.validate(
        program.codec,
        program.max_length,
        program.question_codec,
        getattr(program, "max_question_length", None),
    )
    return pairs


def warn_unreliable(command: str, unreliable: int, total: int) -> None:
    """One line on stderr when some estimates' Pareto k-hat is over the threshold (nothing when none is)."""
    if unreliable:
        print(
            f"retro {command}: warning: {unreliable} of {total} estimates have a Pareto k-hat over the threshold: "
            "their importance weights are too heavy-tailed to trust them or their standard errors (more "
            "particles, or another proposal, may help)",
            file=sys.stderr,
        )


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float (inf, nan) replaced by ``None``: strict JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def add_base(parser) -> None:
    parser.add_argument(
        "--base",
        default=None,
        metavar="DIR",
        help="language-model imitators: the base model directory it was trained on (local, safetensors weights; default: none)",
    )


def add_seed(parser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


MAX_SEED = 2**63 - 1


def seed_everything(seed: int) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise RetroError(f"--seed must be an integer from 0 to 2**63 - 1, got {seed!r}")
    torch.manual_seed(seed)


# C0 and C1 control characters and DEL: shown escaped in tables, so text from a data set cannot drive the
# reader's terminal (ESC sequences, the 8-bit CSI).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character shown as its Python escape (``\\x1b``), for terminal output."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else printable(str(value))


def write_records(records: Iterable[dict[str, Any]], fmt: str, out: TextIO | None = None) -> None:
    """Write dict records as JSON lines, CSV, or an aligned text table (to stdout by default)."""
    out = out if out is not None else sys.stdout
    records = list(records)
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    if not records:
        return
    columns = list(records[0])
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return
    if fmt != "table":
        raise RetroError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    cells = [[_cell(r[c]) for c in columns] for r in records]
    header = [printable(str(c)) for c in columns]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(header)]
    out.write("  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")
