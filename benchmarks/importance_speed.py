"""Per-answer importance-sampling time: retro vs hand-written PyTorch vs Pyro's nearest tools.

The estimator is log p(answer | question) ~= log (1/K) sum_k p(answer, z_k | question) / q(z_k | question,
answer), z_k ~ q, for the built-in latent imitator ``LatentSeq2Seq`` with an (untrained) ``AmortizedGuide`` as
proposal. Methods, all under ``torch.no_grad`` and all starting from lists of strings:

* ``retro``: ``retro.inference.importance(..., proposal="guide")`` (its records also carry a standard error,
  an ESS and a Pareto k-hat per answer). ``retro_log_weights`` times
  ``retro.inference.log_weights.log_weights`` alone (encoding included, records left out), to split retro's
  time between the weights and the records.
* ``torch``: the same estimator written by hand in plain PyTorch on the *same* modules (imitator encoder and
  decoder, guide encoders, hidden layer and head), with the same memory bound (``max_rows`` particle x answer
  rows decoded at once) and the same EOS / ``max_length`` masking as ``StringDistribution.log_prob``. It
  computes the estimate and its delta-method standard error, nothing else. Like retro, it runs on groups of
  equal-length answers (no decoder steps spent on padding); ``torch_padded`` runs it on the whole padded batch
  at once, to show what padding costs.
* ``pyro_importance``: ``pyro.infer.Importance(model, guide, num_samples=K)``, one run per answer (its log
  weights are whole-trace sums, so per-answer numbers need a batch of one); it loops over particles in Python,
  so it runs on a few answers only and its time per answer is extrapolated.
* ``renyi``: ``pyro.infer.RenyiELBO(alpha=0, num_particles=K, vectorize_particles=True).loss``, one call per
  answer (its loss is minus the IWAE bound, i.e. minus log of the mean weight). ``renyi_chunked`` calls it on
  chunks of ``max_rows // K`` answers (same memory bound as retro): the loss is then minus the *sum* of the
  per-answer bounds (the answers plate is common to all sites, so RenyiELBO keeps it apart), so only the total
  is checked.

Agreement: the methods draw random numbers differently, so estimates are compared statistically: an answer
agrees when ``|retro - other| <= 5 * sqrt(se_retro^2 + se_other^2)`` (for the Pyro tools, which give no
standard error, ``se_other`` is taken equal to retro's: the same estimator with the same K).

Timing: each method is warmed up once, then ``--repeats`` rounds run every method once in turn; the best wall
time (and, separately, the best CPU time) per method is divided by the number of answers. Torch runs on one
thread by default (``--threads``).

Usage::

    python benchmarks/importance_speed.py                 # 200 answers, K = 64 and 1000 (a few minutes)
    python benchmarks/importance_speed.py --smoke         # seconds
    python benchmarks/importance_speed.py --profile 1000  # also a cProfile of one retro call, K=1000 (stderr)

Prints exactly one JSON object on stdout; progress and profiles go to stderr.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import platform
import pstats
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import pyro
import torch
from torch.nn import functional as F

import retro
from retro.humans import make_human
from retro.inference import AmortizedGuide, importance
from retro.inference.log_weights import DEFAULT_MAX_ROWS, log_weights
from retro.models import LatentSeq2Seq
from retro.text import StringBatch

AGREEMENT_SIGMAS = 5.0
LOG_2PI = math.log(2 * math.pi)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- setup ---------------------------------------------------------------------------------------------------
def build(num_answers: int, device: str):
    """The data (arithmetic human), an untrained ``LatentSeq2Seq`` and an untrained ``AmortizedGuide``."""
    torch.manual_seed(0)
    questions, answers = make_human("arithmetic").draw(num_answers, seed=0)
    imitator = LatentSeq2Seq(max_length=16, hidden_dim=64, latent_dim=8)
    guide = AmortizedGuide(imitator, hidden_dim=32)
    imitator.to(device)
    guide.to(device)
    return imitator, guide, list(questions), list(answers)


# -- hand-written PyTorch ------------------------------------------------------------------------------------
def encode(texts: Sequence[str], eos: int, device) -> StringBatch:
    """UTF-8 bytes, EOS-padded (the encoders take a ``StringBatch``: just the two tensors)."""
    ids = [list(text.encode("utf-8")) for text in texts]
    lengths = [len(row) for row in ids]
    width = max(lengths) + 1
    tokens = torch.tensor([row + [eos] * (width - len(row)) for row in ids], dtype=torch.long, device=device)
    return StringBatch(tokens, torch.tensor(lengths, dtype=torch.long, device=device))


@torch.no_grad()
def torch_importance(
    imitator: LatentSeq2Seq,
    guide: AmortizedGuide,
    questions: Sequence[str],
    answers: Sequence[str],
    num_particles: int,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-answer (log mean weight, delta-method standard error), guide proposal, in plain PyTorch."""
    device = next(imitator.parameters()).device
    eos, max_length = imitator.codec.eos, imitator.max_length
    q_batch, a_batch = encode(questions, eos, device), encode(answers, eos, device)
    # Everything that does not depend on z is computed once.
    question_code = imitator.encoder(q_batch)  # [B, H]
    h = guide.hidden(torch.cat([guide.question_encoder(q_batch), guide.answer_encoder(a_batch)], -1))
    loc, raw_scale = guide.heads["z"](h).chunk(2, dim=-1)  # [B, D] each
    scale = F.softplus(raw_scale) + 1e-4
    log_scale_sum = scale.log().sum(-1)
    tokens, lengths = a_batch.tokens, a_batch.lengths
    num_answers, width = tokens.shape
    # As StringDistribution.log_prob: decisions at positions <= length, capped at max_length (EOS there is
    # forced); a string without EOS or longer than max_length is impossible.
    is_eos = tokens == eos
    impossible = (~is_eos.any(-1)) | (lengths > max_length)
    steps = min(int(lengths.max()) + 1, max_length, width)
    tokens = tokens[:, :steps]
    scored = torch.arange(steps, device=device) <= lengths[:, None]  # [B, steps]
    latent_dim = loc.shape[-1]

    per_chunk = max(1, max_rows // num_answers)
    chunks = []
    for start in range(0, num_particles, per_chunk):
        k = min(per_chunk, num_particles - start)
        eps = torch.randn(k, num_answers, latent_dim, device=device)
        z = loc + scale * eps  # [k, B, D]
        log_q = -0.5 * eps.square().sum(-1) - log_scale_sum - 0.5 * latent_dim * LOG_2PI
        log_prior = -0.5 * z.square().sum(-1) - 0.5 * latent_dim * LOG_2PI
        context = torch.cat([question_code.expand(k, -1, -1), z], dim=-1).reshape(k * num_answers, -1)
        rows = tokens.expand(k, -1, -1).reshape(k * num_answers, steps)
        logits = imitator.decoder(context, rows)  # [k B, steps, V]
        picked = logits.gather(-1, rows[..., None]).squeeze(-1) - logits.logsumexp(-1)
        log_lik = picked.view(k, num_answers, steps).masked_fill(~scored, 0.0).sum(-1)
        log_lik = log_lik.masked_fill(impossible, float("-inf"))
        chunks.append(log_prior + log_lik - log_q)
    log_w = torch.cat(chunks, dim=0).double()  # [K, B]
    top = log_w.max(0).values
    w = (log_w - top).exp()
    mean_w = w.mean(0)
    estimate = top + mean_w.log()
    stderr = (
        w.std(0) / math.sqrt(num_particles) / mean_w if num_particles > 1 else torch.full_like(top, math.nan)
    )
    return estimate.cpu(), stderr.cpu()


def torch_importance_bucketed(imitator, guide, questions, answers, num_particles, max_rows=DEFAULT_MAX_ROWS):
    """``torch_importance`` on groups of answers of equal length: no decoder steps are spent on padding."""
    groups: dict[int, list[int]] = {}
    for i, answer in enumerate(answers):
        groups.setdefault(len(answer.encode("utf-8")), []).append(i)
    estimate = torch.empty(len(answers), dtype=torch.float64)
    stderr = torch.empty(len(answers), dtype=torch.float64)
    for index in groups.values():
        est, se = torch_importance(
            imitator,
            guide,
            [questions[i] for i in index],
            [answers[i] for i in index],
            num_particles,
            max_rows,
        )
        estimate[index], stderr[index] = est, se
    return estimate, stderr


# -- retro ---------------------------------------------------------------------------------------------------
def retro_importance(imitator, guide, questions, answers, num_particles):
    records = importance(
        imitator, questions, answers, guide=guide, proposal="guide", num_particles=num_particles
    ).records
    return (
        torch.tensor([r.log_prob for r in records], dtype=torch.float64),
        torch.tensor([r.stderr for r in records], dtype=torch.float64),
    )


def retro_log_weights(imitator, guide, questions, answers, num_particles):
    q_batch, a_batch = imitator.encode_questions(questions), imitator.encode_answers(answers)
    log_w = log_weights(imitator, q_batch, a_batch, num_particles, guide)
    return torch.logsumexp(log_w.double(), 0) - math.log(num_particles)


# -- Pyro ----------------------------------------------------------------------------------------------------
def pyro_importance(imitator, guide, questions, answers, num_particles):
    """``pyro.infer.Importance``, one answer at a time: ``[B]`` log of the mean weight."""
    out = []
    for question, answer in zip(questions, answers, strict=True):
        q_batch, a_batch = imitator.encode_questions([question]), imitator.encode_answers([answer])
        posterior = pyro.infer.Importance(imitator.model, guide, num_samples=num_particles).run(
            q_batch, a_batch
        )
        out.append(float(posterior.get_log_normalizer()))
    return torch.tensor(out, dtype=torch.float64)


def renyi(imitator, guide, questions, answers, num_particles):
    """``RenyiELBO(alpha=0)`` loss, one answer at a time: ``[B]`` of minus the loss (the IWAE bound)."""
    elbo = pyro.infer.RenyiELBO(
        alpha=0, num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1
    )
    out = []
    for question, answer in zip(questions, answers, strict=True):
        q_batch, a_batch = imitator.encode_questions([question]), imitator.encode_answers([answer])
        out.append(-elbo.loss(imitator.model, guide, q_batch, a_batch))
    return torch.tensor(out, dtype=torch.float64)


def renyi_chunked(imitator, guide, questions, answers, num_particles, max_rows=DEFAULT_MAX_ROWS):
    """``RenyiELBO(alpha=0)`` loss on chunks of ``max_rows // K`` answers: minus the sum of their bounds."""
    elbo = pyro.infer.RenyiELBO(
        alpha=0, num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1
    )
    per_chunk = max(1, max_rows // num_particles)
    total = 0.0
    for start in range(0, len(answers), per_chunk):
        q_batch = imitator.encode_questions(questions[start : start + per_chunk])
        a_batch = imitator.encode_answers(answers[start : start + per_chunk])
        total -= elbo.loss(imitator.model, guide, q_batch, a_batch)
    return total


# -- measuring -----------------------------------------------------------------------------------------------
class Timing:
    """Best wall and CPU seconds of a method over its timed runs, and the result of its last run."""

    def __init__(self):
        self.wall = math.inf
        self.cpu = math.inf
        self.result = None


def measure(
    methods: dict[str, tuple[Callable[[], object], Callable[[], object] | None]],
    repeats: int,
    label: str = "",
) -> dict[str, Timing]:
    """Warm each method up once (with its warm-up callable if given, else itself), then time ``repeats``
    rounds, each running every method once in turn (interleaving spreads the load of a busy machine over all
    methods alike). Keeps each method's best wall time and best CPU (process) time."""
    timings = {name: Timing() for name in methods}
    with torch.no_grad():
        for name, (fn, warmup) in methods.items():
            log(f"  {label}warm-up {name}")
            (warmup or fn)()
        for round_ in range(repeats):
            for name, (fn, _) in methods.items():
                wall, cpu = time.perf_counter(), time.process_time()
                result = fn()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                timing = timings[name]
                timing.wall, timing.cpu, timing.result = min(timing.wall, wall), min(timing.cpu, cpu), result
                log(f"  {label}round {round_ + 1}/{repeats} {name}: {wall:.3f} s wall, {cpu:.3f} s CPU")
    return timings


def agreement(
    a: torch.Tensor, b: torch.Tensor, se_a: torch.Tensor, se_b: torch.Tensor
) -> tuple[float, float]:
    """(fraction of answers with |a - b| <= 5 combined standard errors, max |a - b|)."""
    diff = (a - b).abs()
    same = a == b  # covers equal infinities
    tolerance = AGREEMENT_SIGMAS * torch.sqrt(se_a.square() + se_b.square())
    ok = same | (diff <= tolerance)
    finite = torch.isfinite(diff)
    max_diff = float(diff[finite].max()) if bool(finite.any()) else float("nan")
    return float(ok.double().mean()), max_diff


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


def run_particles(args, imitator, guide, questions, answers, num_particles: int) -> dict:
    n, k = len(answers), num_particles
    m = min(n, args.importance_answers)
    r = min(n, args.renyi_answers)
    log(f"K={k}: {n} answers (pyro Importance on {m}, per-answer RenyiELBO on {r})")
    timings = measure(
        {
            "retro": (lambda: retro_importance(imitator, guide, questions, answers, k), None),
            "torch": (lambda: torch_importance_bucketed(imitator, guide, questions, answers, k), None),
            "retro_log_weights": (lambda: retro_log_weights(imitator, guide, questions, answers, k), None),
            "torch_padded": (lambda: torch_importance(imitator, guide, questions, answers, k), None),
            "renyi": (
                lambda: renyi(imitator, guide, questions[:r], answers[:r], k),
                lambda: renyi(imitator, guide, questions[:2], answers[:2], k),
            ),
            "renyi_chunked": (lambda: renyi_chunked(imitator, guide, questions, answers, k), None),
        },
        args.repeats,
        f"K={k} ",
    )
    # pyro.infer.Importance is orders of magnitude slower: fewer answers and runs, after the others.
    timings.update(
        measure(
            {
                "pyro_importance": (
                    lambda: pyro_importance(imitator, guide, questions[:m], answers[:m], k),
                    lambda: pyro_importance(imitator, guide, questions[:1], answers[:1], k),
                ),
            },
            args.importance_repeats,
            f"K={k} ",
        )
    )

    retro_est, retro_se = timings["retro"].result
    torch_est, torch_se = timings["torch"].result
    fraction, max_diff = agreement(retro_est, torch_est, retro_se, torch_se)
    imp_fraction, _ = agreement(retro_est[:m], timings["pyro_importance"].result, retro_se[:m], retro_se[:m])
    renyi_fraction, _ = agreement(retro_est[:r], timings["renyi"].result, retro_se[:r], retro_se[:r])
    chunked_diff = timings["renyi_chunked"].result - float(retro_est.sum())
    total_se = float(retro_se.square().sum().sqrt())

    per = {name: t.wall / {"pyro_importance": m, "renyi": r}.get(name, n) for name, t in timings.items()}
    cpu = {name: t.cpu / {"pyro_importance": m, "renyi": r}.get(name, n) for name, t in timings.items()}
    log(f"K={k}: " + ", ".join(f"{name} {value * 1e3:.3f} ms/answer" for name, value in per.items()))
    return {
        "K": k,
        "retro_s_per_answer": per["retro"],
        "torch_s_per_answer": per["torch"],
        "ratio_retro_vs_torch": ratio(per["retro"], per["torch"]),
        "pyro_importance_s_per_answer": per["pyro_importance"],
        "renyi_s_per_answer": per["renyi"],
        "ratio_pyro_importance_vs_retro": ratio(per["pyro_importance"], per["retro"]),
        "ratio_renyi_vs_retro": ratio(per["renyi"], per["retro"]),
        "agreement_fraction": fraction,
        "max_abs_diff": max_diff,
        # More detail.
        "retro_log_weights_s_per_answer": per["retro_log_weights"],
        "ratio_retro_log_weights_vs_torch": ratio(per["retro_log_weights"], per["torch"]),
        "renyi_chunked_s_per_answer": per["renyi_chunked"],
        "ratio_renyi_chunked_vs_retro": ratio(per["renyi_chunked"], per["retro"]),
        "torch_padded_s_per_answer": per["torch_padded"],
        "ratio_torch_padded_vs_torch": ratio(per["torch_padded"], per["torch"]),
        "cpu_s_per_answer": cpu,
        "ratio_retro_vs_torch_cpu": ratio(cpu["retro"], cpu["torch"]),
        "pyro_importance_answers_timed": m,
        "renyi_answers_timed": r,
        "agreement_sigmas": AGREEMENT_SIGMAS,
        "mean_log_prob_retro": float(retro_est.mean()),
        "mean_log_prob_torch": float(torch_est.mean()),
        "median_stderr_retro": float(retro_se.median()),
        "median_stderr_torch": float(torch_se.median()),
        "pyro_importance_agreement_fraction": imp_fraction,
        "renyi_agreement_fraction": renyi_fraction,
        "renyi_chunked_total_minus_retro_total": chunked_diff,
        "renyi_chunked_total_within_5se": bool(
            abs(chunked_diff) <= AGREEMENT_SIGMAS * math.sqrt(2) * total_se
        ),
    }


def profile_retro(imitator, guide, questions, answers, num_particles: int, top: int = 30) -> None:
    """cProfile of one retro ``importance`` call (after a warm-up), by cumulative and own time, to stderr."""
    with torch.no_grad():
        retro_importance(imitator, guide, questions, answers, num_particles)
        profiler = cProfile.Profile()
        profiler.enable()
        retro_importance(imitator, guide, questions, answers, num_particles)
        profiler.disable()
    for key in ("cumulative", "tottime"):
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats(key).print_stats(top)
        log(f"== retro importance, K={num_particles}, {len(answers)} answers, sorted by {key} ==")
        log(stream.getvalue())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=None, help="answers scored (default 200; smoke 8)")
    parser.add_argument(
        "--particles", default=None, help="comma-separated K values (default 64,1000; smoke 16,64)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs after the warm-up (default 3; smoke 2)"
    )
    parser.add_argument(
        "--importance-answers",
        type=int,
        default=None,
        help="answers for pyro.infer.Importance, whose time is extrapolated (default 4; smoke 2)",
    )
    parser.add_argument(
        "--importance-repeats",
        type=int,
        default=None,
        help="timed runs of pyro.infer.Importance (default 2; smoke 1)",
    )
    parser.add_argument(
        "--renyi-answers", type=int, default=None, help="answers for per-answer RenyiELBO (default: all)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for tests")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads (default 1: these small networks gain little from more, and "
        "OpenMP threads on a busy machine can be many times slower; 0: torch's default)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=None,
        metavar="K",
        help="also print a cProfile of one retro call with K particles to stderr",
    )
    args = parser.parse_args(argv)
    smoke = args.smoke
    defaults = {
        "answers": 8 if smoke else 200,
        "particles": "16,64" if smoke else "64,1000",
        "repeats": 2 if smoke else 3,
        "importance_answers": 2 if smoke else 4,
        "importance_repeats": 1 if smoke else 2,
        "renyi_answers": 10**9,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.particles = [int(k) for k in str(args.particles).split(",") if k.strip()]
    if args.answers < 1 or not args.particles or min(args.particles) < 2:
        parser.error("need at least one answer and particle counts >= 2")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    imitator, guide, questions, answers = build(args.answers, args.device)
    if args.profile is not None:
        profile_retro(imitator, guide, questions, answers, args.profile)
    results = [run_particles(args, imitator, guide, questions, answers, k) for k in args.particles]
    return {
        "benchmark": "importance_speed",
        "answers": len(answers),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "max_rows": DEFAULT_MAX_ROWS,
        "model": {
            "imitator": "LatentSeq2Seq",
            "max_length": 16,
            "hidden_dim": 64,
            "latent_dim": 8,
            "guide_hidden_dim": 32,
            "human": "arithmetic",
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "pyro": pyro.__version__,
            "numpy": np.__version__,
            "retro": retro.__version__,
        },
        "results": results,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
