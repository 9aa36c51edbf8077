"""Adversarial training throughput: retro's ``AdversarialObjective`` vs the same step written by hand in PyTorch.

One step, for a minibatch of B human (question, answer) pairs and S answers drawn per question:

1. draw S x B answers from the ``seq2seq`` imitator (ancestral decoding) and their log p (teacher forcing);
2. one Adam step of the discriminator (binary cross-entropy, human vs drawn pairs);
3. the score-function loss with the leave-one-out baseline, backward, one Adam step of the imitator.

``retro`` runs it through ``retro.inference.train.train`` with ``AdversarialObjective`` (Pyro traces the program;
the sampler and log p are the program's own); ``torch`` is the same step on the *same* modules (imitator encoder
and decoder, ``NeuralDiscriminator``) without Pyro: its own decoding loop over ``decoder.step`` and its own
teacher-forced log p with the same EOS / ``max_length`` masking. ``retrodiction`` times a maximum-likelihood
step of ``train`` for scale. Each method is timed over ``--steps`` steps in ``--repeats`` interleaved rounds
(best round kept), on one thread by default. Prints one JSON object: answers (human pairs) per second for each
method and ``ratio_retro_vs_torch`` (time per step, retro / hand-written; the goal is <= 1.2).

Usage::

    python benchmarks/adversarial_speed.py            # about a minute
    python benchmarks/adversarial_speed.py --smoke    # seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from rounds import best_of_rounds

from retro.discriminators import NeuralDiscriminator
from retro.humans import make_human
from retro.inference.adversarial import AdversarialObjective
from retro.inference.train import TrainConfig, train
from retro.inference.two_sample import discriminator_loss
from retro.models import make_imitator
from retro.text import AlphabetCodec, StringBatch

CODEC = AlphabetCodec("0123456789+-=")
MAX_LENGTH = 16


def _modules(hidden: int, seed: int):
    torch.manual_seed(seed)
    imitator = make_imitator("seq2seq", codec=CODEC, max_length=MAX_LENGTH, hidden_dim=hidden)
    return imitator, NeuralDiscriminator(CODEC, MAX_LENGTH, hidden_dim=hidden)


def _retro(questions, answers, steps, batch, samples, hidden, seed) -> float:
    imitator, disc = _modules(hidden, seed)
    objective = AdversarialObjective(imitator, disc, samples_per_question=samples)
    config = TrainConfig(steps=steps, batch_size=batch, learning_rate=1e-3, eval_every=10**9, progress=False)
    start = time.perf_counter()
    train(imitator, questions, answers, config=config, objective=objective)
    return time.perf_counter() - start


def _retrodiction(questions, answers, steps, batch, samples, hidden, seed) -> float:
    imitator, _ = _modules(hidden, seed)
    config = TrainConfig(steps=steps, batch_size=batch, learning_rate=1e-3, eval_every=10**9, progress=False)
    start = time.perf_counter()
    train(imitator, questions, answers, config=config)
    return time.perf_counter() - start


def _sample(decoder, context: torch.Tensor, eos: int) -> torch.Tensor:
    n = context.shape[0]
    out = torch.full((n, MAX_LENGTH + 1), eos, dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    previous = torch.full((n,), decoder.bos, dtype=torch.long)
    state = decoder.init_state(context)
    for t in range(MAX_LENGTH):
        logits, state = decoder.step(state, previous)
        token = torch.distributions.Categorical(logits=logits).sample().masked_fill(done, eos)
        out[:, t] = token
        done |= token == eos
        if bool(done.all()):
            break
        previous = token
    return out


def _log_prob(decoder, context: torch.Tensor, tokens: torch.Tensor, eos: int) -> torch.Tensor:
    lengths = (tokens == eos).long().argmax(-1)  # every drawn row has an EOS
    steps = min(int(lengths.max()) + 1, MAX_LENGTH)
    tokens = tokens[:, :steps]
    picked = decoder(context, tokens).log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)
    return picked.masked_fill(torch.arange(steps) > lengths[:, None], 0.0).sum(-1)


def _torch(questions, answers, steps, batch, samples, hidden, seed) -> float:
    imitator, disc = _modules(hidden, seed)
    q_all = StringBatch.from_strings(questions, CODEC)
    a_all = StringBatch.from_strings(answers, CODEC, MAX_LENGTH)
    gen_opt = torch.optim.Adam(imitator.parameters(), lr=1e-3)
    disc_opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    eos = CODEC.eos
    start = time.perf_counter()
    order, cursor = torch.randperm(len(answers)), 0
    for _ in range(steps):
        if cursor + batch > len(order):
            order, cursor = torch.randperm(len(answers)), 0
        index = order[cursor : cursor + batch]
        cursor += batch
        q, a = q_all[index], a_all[index]
        repeated = q[torch.arange(len(index)).repeat(samples)]
        context = imitator.encoder(repeated)
        with torch.no_grad():
            drawn = _sample(imitator.decoder, context, eos)
        log_prob = _log_prob(imitator.decoder, context, drawn, eos)
        fake = StringBatch.from_tokens(drawn, eos)
        disc_loss = discriminator_loss(disc, (q, a), (repeated, fake))
        disc_opt.zero_grad()
        disc_loss.backward()
        disc_opt.step()
        with torch.no_grad():
            reward = disc.logits(repeated, fake).reshape(samples, len(index))
        baseline = (reward.sum(0, keepdim=True) - reward) / (samples - 1)
        loss = -((reward - baseline).reshape(-1) * log_prob).mean()
        gen_opt.zero_grad()
        loss.backward()
        gen_opt.step()
        if not torch.isfinite(loss):
            raise RuntimeError("non-finite loss")
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.batch, args.hidden, args.repeats = 3, 8, 16, 1
    torch.set_num_threads(args.threads)
    questions, answers = make_human("arithmetic", CODEC, MAX_LENGTH).draw(2000, seed=0)
    settings = (args.batch, args.samples, args.hidden, 0)
    methods = {"retro": _retro, "torch": _torch, "retrodiction": _retrodiction}
    best = best_of_rounds(
        {
            name: (lambda steps, method=method: method(questions, answers, steps, *settings))
            for name, method in methods.items()
        },
        args.steps,
        args.repeats,
    )
    per_second = {
        f"{name}_answers_per_s": args.steps * args.batch / seconds for name, seconds in best.items()
    }
    report = {
        "benchmark": "adversarial_speed",
        "steps": args.steps,
        "batch": args.batch,
        "samples_per_question": args.samples,
        "hidden": args.hidden,
        "threads": args.threads,
        **per_second,
        "ratio_retro_vs_torch": best["retro"] / best["torch"],
        "ratio_adversarial_vs_retrodiction": best["retro"] / best["retrodiction"],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
