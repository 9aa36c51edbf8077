"""Peak memory of ``retro score`` against the number of answers: streamed scoring must stay flat.

Model: the built-in ``seq2seq`` imitator (UTF-8 bytes, ``--hidden`` units, untrained: memory does not depend on
the weights), saved as ``retro train`` would. Data: ``--answers`` (a comma-separated list) answers of the
``typist`` human in a JSONL file (10⁴ distinct pairs repeated). Each size is scored exactly by a fresh
``python -m retro score --method exact --format jsonl --out FILE --batch-size 512`` (one thread), whose peak
resident memory (``ru_maxrss`` of that process alone) is reported. Prints one JSON object.

Usage::

    python benchmarks/scoring_memory.py                            # 10^4 and 10^5 answers: minutes
    python benchmarks/scoring_memory.py --answers 10000,1000000    # the 10^6 run: about 10 minutes idle
    python benchmarks/scoring_memory.py --smoke                    # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="one small size (the test suite runs this)")
    p.add_argument("--answers", default="10000,100000", help="comma-separated numbers of answers")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def _peak_of(command: list[str]) -> float:
    """Run ``command`` from a fresh process, so ``RUSAGE_CHILDREN`` is that command's own peak (MB)."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", *command], capture_output=True, text=True, env=_environment()
    )
    if done.returncode:
        raise SystemExit(f"scoring failed: {done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _child(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=_environment())
    if done.returncode:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(done.returncode)
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def _prepare(directory: Path, sizes: list[int], hidden: int) -> Path:
    from retro.humans import make_human
    from retro.inference.trained import save_trained
    from retro.models import make_imitator

    model = directory / "model"
    save_trained(model, make_imitator("seq2seq", hidden_dim=hidden, max_length=32).eval(), None, {})
    questions, answers = make_human("typist").draw(min(10_000, max(sizes)), seed=0)
    lines = [json.dumps({"question": q, "answer": a}) + "\n" for q, a in zip(questions, answers)]
    for size in sizes:
        with open(directory / f"answers{size}.jsonl", "w", encoding="utf-8") as f:
            for start in range(0, size, len(lines)):
                f.writelines(lines[: size - start])
    return model


def main() -> None:
    args = _parser().parse_args()
    if args.child:
        _child(args.child)
        return
    sizes = [300] if args.smoke else [int(x) for x in args.answers.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        model = _prepare(directory, sizes, args.hidden)
        for size in sizes:
            out = directory / f"scores{size}.jsonl"
            start = time.perf_counter()
            peak = _peak_of(
                [
                    sys.executable,
                    "-m",
                    "retro",
                    "score",
                    "--model",
                    str(model),
                    "--data",
                    str(directory / f"answers{size}.jsonl"),
                    "--method",
                    "exact",
                    "--format",
                    "jsonl",
                    "--out",
                    str(out),
                    "--batch-size",
                    str(args.batch_size),
                ]
            )
            with open(out, "rb") as f:
                written = sum(1 for _ in f)
            rows.append(
                {
                    "answers": size,
                    "written": written,
                    "peak_rss_mb": round(peak, 1),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
    print(
        json.dumps(
            {
                "benchmark": "scoring_memory",
                "smoke": args.smoke,
                "hidden": args.hidden,
                "batch_size": args.batch_size,
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "results": rows,
                "growth_mb_first_to_last": round(rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
