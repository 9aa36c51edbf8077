"""Runs that the distributed tests start as separate processes (one per rank) and also call in-process.

``python tests/distributed_runs.py OUT`` in a process whose environment names its rank (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``, as ``torchrun`` sets them) joins the run and does every check's distributed half
in one launch (a process start costs more than the work): it trains every case below, resumes the ELBO case, and
scores and evaluates the sharded-scoring cases, writing rank 0's parameters, scores and metrics (and a marker per
rank) under ``OUT``. The same functions run in one process give the reference.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from retro.discriminators import NeuralDiscriminator
from retro.distributed import World, join_from_environment, leave
from retro.humans import make_human
from retro.inference import AmortizedGuide
from retro.inference.adversarial import AdversarialObjective
from retro.inference.iwae import IWAEObjective
from retro.inference.train import TrainConfig, train
from retro.inference.train_state import load_train_state, save_train_state
from retro.models import make_imitator
from retro.text import AlphabetCodec

CODEC = AlphabetCodec("0123456789+-=")
TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_environment(rank: int, size: int, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(size),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(TESTS),
    }


STEPS, BATCH, SLICES = 20, 8, 2
CASES = ("elbo", "iwae", "adversarial")


def _data():
    human = make_human("arithmetic", CODEC, max_length=8)
    return human.draw(48, seed=0), human.draw(8, seed=1)


def _build(case: str):
    torch.manual_seed(0)
    imitator = make_imitator(
        "seq2seq" if case == "adversarial" else "latent", codec=CODEC, max_length=8, hidden_dim=8
    )
    imitator.double()
    guide = AmortizedGuide(imitator, hidden_dim=8).double() if case != "adversarial" else None
    objective = None
    if case == "iwae":
        objective = IWAEObjective(imitator, guide, num_particles=3)
    elif case == "adversarial":
        discriminator = NeuralDiscriminator(CODEC, 8, 8).double()
        objective = AdversarialObjective(imitator, discriminator, samples_per_question=2)
    return imitator, guide, objective


def _config(steps: int = STEPS, checkpoint_every: int | None = None) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_size=BATCH,
        eval_every=10,
        eval_particles=2,
        eval_answers=4,
        progress=False,
        slices=SLICES,
        checkpoint_every=checkpoint_every,
        seed=5,
    )


def parameters(imitator, guide, objective) -> dict[str, torch.Tensor]:
    """Every parameter of the run, flat, by name."""
    tensors = {f"imitator.{k}": v for k, v in imitator.state_dict().items()}
    if guide is not None:
        tensors.update({f"guide.{k}": v for k, v in guide.state_dict().items()})
    if objective is not None and hasattr(objective, "discriminator"):
        tensors.update({f"discriminator.{k}": v for k, v in objective.discriminator.state_dict().items()})
    return {k: v.detach().clone().contiguous() for k, v in tensors.items()}


def run_case(case: str, world: World | None = None, steps: int = STEPS, resume=None, states=None):
    """Train one case for ``steps``; returns its parameters (``states`` collects its training states)."""
    (questions, answers), heldout = _data()
    imitator, guide, objective = _build(case)
    train(
        imitator,
        questions,
        answers,
        guide,
        heldout,
        _config(steps, checkpoint_every=10 if states is not None else None),
        objective=objective,
        on_checkpoint=states.append if states is not None else None,
        resume=resume,
        world=world,
    )
    return parameters(imitator, guide, objective)


def train_part(out: Path, world: World) -> None:
    """Every training case on ``world``, then the ELBO case resumed from its step-10 state."""
    states = []  # the ELBO run's states (steps 10 and 20): writing them does not change the run
    trained = {case: run_case(case, world, states=states if case == "elbo" else None) for case in CASES}
    if world.is_main:
        for case, tensors in trained.items():
            save_file(tensors, str(out / f"{case}.safetensors"))
    # resume: rank 0 writes the state of step 10, every rank reads it and continues to step 20
    if world.is_main:
        save_train_state(out / "state", states[0], {})
    world.barrier()
    halfway, _ = load_train_state(out / "state")
    resumed = run_case("elbo", world, resume=halfway)
    if world.is_main:
        save_file(trained["elbo"], str(out / "straight.safetensors"))
        save_file(resumed, str(out / "resumed.safetensors"))


# -- sharded scoring -------------------------------------------------------------------------------------------------

SCORING_METHODS = ("importance[guide]", "elbo", "ais")
SCORING_BATCHES = (1, 7, 64)
# max_rows 6 = one answer's particles (AIS chains) per pass; 4096: a whole chunk in one pass. (Below the number of
# AIS chains, max_rows would split one answer's chains, whose step sizes adapt together: not a keyed quantity.)
SCORING_MAX_ROWS = (6, 4096)
# (batch size, max_rows) also run on 2 ranks: 12 answers in chunks of 1 and of 7 (a whole and a partial round)
SCORING_ON_TWO_RANKS = ((1, 4096), (7, 6))


def scoring_model(dtype: torch.dtype = torch.float64):
    """A small untrained latent imitator with its guide, in ``dtype``, and 12 answers to score."""
    torch.manual_seed(2)
    imitator = make_imitator("latent", codec=CODEC, max_length=8, hidden_dim=8, latent_dim=2).to(dtype)
    guide = AmortizedGuide(imitator, hidden_dim=8).to(dtype)
    questions, answers = make_human("arithmetic", CODEC, max_length=8).draw(12, seed=3)
    return imitator, guide, questions, answers


def sharded_scores(method: str, batch: int, max_rows: int, world: World, dtype=torch.float64) -> str:
    """The JSONL that rank 0 gathers (``""`` on the other ranks) for one method, batch size and ``max_rows``."""
    from retro.inference import estimate
    from retro.inference.scoring import render_records, score_chunks

    imitator, guide, questions, answers = scoring_model(dtype)
    options = {"num_steps": 4} if method == "ais" else {}

    def score(q, a, first):
        return estimate(
            method,
            imitator,
            q,
            a,
            guide=guide,
            num_particles=6,
            seed=9,
            answer_ids=range(first, first + len(a)),
            max_rows=max_rows,
            **options,
        ).records

    pairs = [(q, a, None) for q, a in zip(questions, answers)]
    with torch.no_grad():
        rows = [row for part in score_chunks(score, pairs, batch, seed=9, world=world) for row in part]
    return render_records(rows, "jsonl", header=False)


def sharded_evaluation(world: World) -> dict | None:
    """``retro.inference.evaluate.evaluate`` of the scoring model, its answers and questions shared in chunks of 5."""
    from retro.inference.evaluate import evaluate

    imitator, guide, questions, answers = scoring_model()
    with torch.no_grad():
        return evaluate(
            imitator,
            questions,
            answers,
            guide=guide,
            num_particles=6,
            beam=2,
            seed=9,
            world=world,
            chunk_size=5,
        )


def score_part(out: Path, world: World) -> None:
    """Every method's scores on ``world`` at the (batch size, ``max_rows``) settings run on two ranks, and the
    sharded evaluation."""
    for method in SCORING_METHODS:
        for batch, max_rows in SCORING_ON_TWO_RANKS:
            text = sharded_scores(method, batch, max_rows, world)
            if world.is_main:
                (out / f"{method}-{batch}-{max_rows}.jsonl").write_text(text)
    metrics = sharded_evaluation(world)
    if world.is_main:
        (out / "evaluate.json").write_text(json.dumps(metrics))


def main(out: Path) -> None:
    world = join_from_environment(join_timeout_s=30)
    try:
        train_part(out, world)
        score_part(out, world)
        (out / f"rank{world.rank}.done").write_text("ok")
    finally:
        leave()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]))
