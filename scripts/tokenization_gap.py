"""How much probability the canonical tokenization misses: canonical vs marginal log p on real answers.

For a trained model (``retro train --out DIR``; ``--base`` for a language model) and data, prints one JSON object:
the mean canonical log p (exact), the mean marginal log p over all tokenizations (importance sampling over
tokenizations, :func:`retro.inference.marginal.marginal_importance`, and, for answers with at most
``--max-exact`` tokenizations, exact enumeration as well), the mean gap with its standard error, and how many
tokenizations the answers have. The README's figure:

    python scripts/tokenization_gap.py --model runs/g2p-lm --base runs/g2p-base \
        --data builtin:cmudict-g2p:test --n 200 --particles 200
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--base", default=None)
    parser.add_argument("--data", required=True)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--particles", type=int, default=200)
    parser.add_argument("--max-exact", type=int, default=0, help="enumerate answers with at most this many")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from retro.cli.common import json_ready, load_data, load_model
    from retro.errors import RetroError
    from retro.inference import estimate
    from retro.tokenizations import TokenLattice, answer_bytes

    try:
        program = load_model(args.model, base=args.base).program
        pairs = load_data(args.data, program, args.n, args.seed)
        questions, answers = pairs.questions, pairs.answers
        canonical = estimate("exact", program, questions, answers).records
        sampled = estimate(
            "marginal", program, questions, answers, num_particles=args.particles, seed=args.seed
        )
        sampled = sampled.records
        lattice = TokenLattice(program.codec)
        counts = [
            lattice.count(answer_bytes(program.codec, program.codec.encode(a)), program.max_length)
            for a in answers
        ]
        small = [i for i, c in enumerate(counts) if c <= args.max_exact]
        enumerated = (
            estimate(
                "exact-marginal", program, [questions[i] for i in small], [answers[i] for i in small]
            ).records
            if small
            else []
        )
    except RetroError as e:
        print(f"tokenization_gap: error: {e}", file=sys.stderr)
        return 2
    gaps = [s.log_prob - c.log_prob for s, c in zip(sampled, canonical)]
    n = len(gaps)
    report = {
        "model": args.model,
        "data": args.data,
        "answers": n,
        "particles": args.particles,
        "canonical_log_prob_mean": statistics.fmean(c.log_prob for c in canonical),
        "marginal_log_prob_mean": statistics.fmean(s.log_prob for s in sampled),
        "gap_mean": statistics.fmean(gaps),
        "gap_stderr": math.sqrt(
            statistics.variance(gaps) / n + sum(s.stderr**2 for s in sampled) / n**2 if n > 1 else math.nan
        ),
        "gap_median": statistics.median(gaps),
        "share_gap_over_0.01": sum(g > 0.01 for g in gaps) / n,
        "tokenizations_median": statistics.median(counts),
        "tokenizations_max": max(counts),
        "marginal_stderr_mean": statistics.fmean(s.stderr for s in sampled),
        "ess_mean": statistics.fmean(s.ess for s in sampled),
    }
    if enumerated:
        exact_gaps = [e.log_prob - canonical[i].log_prob for e, i in zip(enumerated, small)]
        report.update(
            enumerated_answers=len(small),
            enumerated_gap_mean=statistics.fmean(exact_gaps),
            enumerated_minus_sampled_mean=statistics.fmean(
                e.log_prob - sampled[i].log_prob for e, i in zip(enumerated, small)
            ),
        )
    print(json.dumps(json_ready(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
