"""``retro demo``: the main job, end to end, on an embedded default.

Trains a latent imitator (1-D Gaussian latent, so its exact log p is computable by quadrature) on answers drawn
from the built-in ``arithmetic`` human, scores held-out human answers with every estimator, and compares each
against the exact value. Writes ``table.json`` and ``estimators.png`` into ``--out`` (each through a temporary file
and a rename); files of those names already there are refused before any work, unless ``--overwrite``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from retro.atomic import atomic_open, atomic_write
from retro.cli.common import add_seed, seed_everything, write_records
from retro.inference.results import summarize
from retro.safepaths import check_output_directory, check_output_file

TABLE, PLOT = "table.json", "estimators.png"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train, score with every estimator, compare against exact",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    p.add_argument("--minutes", type=float, default=3.0, help="training wall-time cap (default 3)")
    p.add_argument("--steps", type=int, default=10000, help="training steps at most (default 10000)")
    p.add_argument("--heldout", type=int, default=100, help="held-out answers scored (default 100)")
    p.add_argument("--particles", type=int, default=1000, help="importance particles (default 1000)")
    p.add_argument("--smoke", action="store_true", help="a tiny run, for tests")
    p.add_argument(
        "--overwrite", action="store_true", help=f"replace an existing {TABLE} and {PLOT} in --out"
    )
    add_seed(p)
    p.set_defaults(run=run)


def _row(method: str, records, mean_abs_error: float, seconds: float) -> dict:
    summary = summarize(records)
    return {
        "method": method,
        "mean_log_prob": summary.log_prob_mean,
        "stderr": summary.stderr,
        "mean_abs_error": mean_abs_error,
        "mean_khat": None if math.isnan(summary.khat_mean) else summary.khat_mean,
        "seconds": seconds,
    }


def _plot(path: str | Path, errors: dict[str, list[float]], human_mean: float, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [n for n in errors if n != "exact"]
    left.boxplot([errors[n] for n in names], showfliers=True)
    left.set_xticks(range(1, len(names) + 1), names, rotation=20)
    left.axhline(0.0, color="k", lw=0.8)
    left.set_ylabel("estimate - exact log p (nats)")
    left.set_title("Per-answer error of each estimator")
    positions = range(len(rows))
    right.errorbar(
        [r["mean_log_prob"] for r in rows],
        positions,
        xerr=[r["stderr"] for r in rows],
        fmt="o",
        capsize=3,
        label="imitator (mean +- standard error)",
    )
    right.axvline(human_mean, color="tab:red", ls="--", label="the human's own exact log p")
    right.set_yticks(list(positions), [r["method"] for r in rows])
    right.set_xlabel("mean log p of held-out human answers (nats)")
    right.set_title("Retrodiction score of the imitator, by estimator")
    right.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def run(args) -> int:
    out = check_output_directory(args.out)  # before any work
    out.mkdir(parents=True, exist_ok=True)  # an existing folder is left as it was when a check below refuses
    for name in (TABLE, PLOT):
        check_output_file(out / name, args.overwrite)

    from retro.humans import make_human
    from retro.inference import AmortizedGuide, estimate, registrations
    from retro.inference.ais import DEFAULT_NUM_CHAINS, DEFAULT_NUM_STEPS
    from retro.inference.compare import compare
    from retro.inference.train import TrainConfig, train
    from retro.models import LatentSeq2Seq

    seed_everything(args.seed)
    n_train, steps, n_heldout, particles = 3000, args.steps, args.heldout, args.particles
    if args.smoke:
        n_train, steps, n_heldout, particles = 200, 20, 8, 50
    human = make_human("arithmetic", max_length=16)
    questions, answers = human.draw(n_train, seed=args.seed)
    heldout_q, heldout_a = human.draw(n_heldout, seed=args.seed + 1)
    imitator = LatentSeq2Seq(max_length=16, hidden_dim=64, latent_dim=1)
    guide = AmortizedGuide(imitator, hidden_dim=32)
    print(
        f"Training a latent imitator (1-D z) on {n_train} answers of the 'arithmetic' human "
        f"(at most {steps} steps, {args.minutes} min)...",
        file=sys.stderr,
    )
    report = train(
        imitator,
        questions,
        answers,
        guide=guide,
        heldout=(heldout_q, heldout_a),
        config=TrainConfig(
            steps=steps,
            minutes=args.minutes,
            eval_every=max(10, steps // 6),
            seed=args.seed,
            progress=sys.stderr.isatty(),
        ),
    )

    human_exact = summarize(estimate("exact", human, heldout_q, heldout_a)).log_prob_mean
    # every registered estimator: those counting particles at the importance budget, those counting chains
    # (AIS, from the guide) at theirs
    particle_methods = [v for r in registrations() if r.budget == "particles" for v in r.variants()]
    chain_methods = [f"{r.name}[{r.default_proposal(True)}]" for r in registrations() if r.budget == "chains"]
    first = compare(
        imitator, heldout_q, heldout_a, particle_methods, [particles], guide=guide, seed=args.seed
    )
    ais_steps = 4 if args.smoke else DEFAULT_NUM_STEPS
    results = [
        first,
        compare(
            imitator,
            heldout_q,
            heldout_a,
            chain_methods,
            [8 if args.smoke else DEFAULT_NUM_CHAINS],
            guide=guide,
            seed=args.seed,
            reference=first,
            options={"ais": {"num_steps": ais_steps}},
        ),
    ]
    reference = results[0].exact
    rows = [_row("exact", reference, 0.0, results[0].exact_seconds)]
    errors = {}
    for result in results:
        for row in result.rows:
            records = result.estimates[(row.method, row.budget)]
            errors[row.method] = [r.log_prob - x.log_prob for r, x in zip(records, reference)]
            rows.append(_row(row.method, records, row.mean_abs_error, row.seconds))
    print(
        f"\nHeld-out answers: {n_heldout}; trained {report.steps} steps in {report.seconds:.0f} s; "
        f"importance particles: {particles}"
    )
    write_records(rows, "table")
    print(f"(the human's own exact log p on the same answers: {human_exact:.4f} nats per answer)\n")
    samples = imitator.sample(heldout_q[:5], num_samples=3)
    write_records(
        [
            {"question": q, "human": a, "imitator samples": " | ".join(s)}
            for q, a, s in zip(heldout_q, heldout_a, samples)
        ],
        "table",
    )
    result = {
        "human": "arithmetic",
        "imitator": imitator.config(),
        "train_steps": report.steps,
        "train_seconds": report.seconds,
        "heldout_answers": n_heldout,
        "particles": particles,
        "human_exact_log_prob_mean": human_exact,
        "rows": rows,
        "history": report.history,
    }
    with atomic_open(out / TABLE) as f:
        f.write(json.dumps(result, indent=2))
    atomic_write(out / PLOT, lambda tmp: _plot(tmp, errors, human_exact, rows))
    print(f"\nWrote {out / TABLE} and {out / PLOT}")
    return 0
