"""Data-parallel scaling on torch.distributed: 2 processes vs 1 (each one thread), for scoring and for training.

* ``scoring``: importance sampling (``--particles`` prior particles per answer) of ``--answers`` answers of the
  ``typist`` human by the built-in ``latent`` imitator (untrained, ``--hidden`` units), through
  :func:`retro.inference.scoring.score_chunks` (chunks of ``--chunk`` answers, shared round-robin, rank 0 gathers
  them in input order). Throughput: answers per second.
* ``training``: the ELBO of the same imitator and its guide, a global minibatch of ``--batch`` answers, ``--steps``
  steps (evaluation off): one process with the whole minibatch vs two with half each (gradients all-reduced by
  gloo). Throughput: answers per second.

Each process is started with the ``torchrun`` environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``) and times its work after joining (start-up excluded), after one warm-up chunk or step. The load
average of the machine is printed beside the figures: on a shared machine the ratios mean little when it is
high. Prints one JSON object; goals on an idle 2-core machine: scoring ratio >= 1.7, training ratio >= 1.5.

Usage::

    python benchmarks/scaling.py           # a few minutes
    python benchmarks/scaling.py --smoke   # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import torch

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
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p


def _model(hidden: int):
    torch.manual_seed(0)
    imitator = make_imitator("latent", max_length=24, hidden_dim=hidden, latent_dim=4)
    return imitator, AmortizedGuide(imitator, hidden_dim=hidden // 2)


def _scoring_seconds(args, world, imitator) -> float:
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
        start = time.perf_counter()
        for _ in chunks:
            pass
        world.barrier()
    return time.perf_counter() - start


def _training_seconds(args, world, imitator, guide) -> float:
    questions, answers = make_human("typist", max_length=24).draw(4 * args.batch, seed=1)

    def run(steps: int) -> None:
        config = TrainConfig(steps=steps, batch_size=args.batch, eval_every=10**9, progress=False)
        train(imitator, questions, answers, guide, None, config, world=world)

    run(1)  # warm-up
    world.barrier()
    start = time.perf_counter()
    run(args.steps)
    world.barrier()
    return time.perf_counter() - start


def _work(args) -> tuple[float, float]:
    """This rank's part of both measurements: (scoring seconds, training seconds) after the warm-ups."""
    world = join_from_environment()
    imitator, guide = _model(args.hidden)
    try:
        return _scoring_seconds(args, world, imitator), _training_seconds(args, world, imitator, guide)
    finally:
        leave()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _measure(size: int, argv: list[str]) -> tuple[float, float]:
    """(scoring, training) seconds of rank 0, over ``size`` processes started with the torchrun environment."""
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
    scoring, training = outputs[0].strip().splitlines()[-1].split()
    return float(scoring), float(training)


def main() -> None:
    args = _parser().parse_args()
    if args.smoke:
        args.answers, args.particles, args.chunk, args.steps, args.batch, args.hidden = 16, 16, 4, 3, 8, 16
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
    ]
    load_before = os.getloadavg()
    seconds = {size: _measure(size, argv) for size in (1, 2)}
    load_after = os.getloadavg()
    scoring = {size: args.answers / seconds[size][0] for size in (1, 2)}
    training = {size: args.steps * args.batch / seconds[size][1] for size in (1, 2)}
    print(
        json.dumps(
            {
                "benchmark": "scaling",
                "smoke": args.smoke,
                "cpus": os.cpu_count(),
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in load_after],
                "scoring_answers_per_second": {str(k): round(v, 2) for k, v in scoring.items()},
                "scoring_ratio_2_vs_1": round(scoring[2] / scoring[1], 3),
                "training_answers_per_second": {str(k): round(v, 2) for k, v in training.items()},
                "training_ratio_2_vs_1": round(training[2] / training[1], 3),
                "answers": args.answers,
                "particles": args.particles,
                "chunk": args.chunk,
                "steps": args.steps,
                "batch": args.batch,
                "hidden": args.hidden,
            }
        )
    )


if __name__ == "__main__":
    main()
