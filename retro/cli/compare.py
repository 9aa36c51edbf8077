"""``retro compare``: estimators x compute budgets on the same answers, against exact values where they exist."""

from __future__ import annotations

import json
import math

from tqdm import tqdm

from retro.atomic import atomic_write
from retro.cli.common import add_base, add_seed, load_data, load_model, seed_everything, write_records
from retro.cli.progress import add_quiet, show_progress
from retro.data import data_file
from retro.errors import RetroError
from retro.safepaths import check_output_file


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare",
        help="compare estimators at several budgets",
        description="Run estimators at several compute budgets (particles; chains for ais) on the same "
        "answers: mean estimate, its Monte Carlo standard error, bias against exact values where they exist, "
        "k-hat and ESS diagnostics, seconds (after a warm-up).",
    )
    p.add_argument("--model", required=True, help="directory written by 'retro train', or human:NAME")
    p.add_argument("--data", required=True, help="JSONL/CSV with question and answer fields, or human:NAME")
    p.add_argument("--n", type=int, default=50, help="answers (default 50)")
    p.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated: {_method_choices()} (default: every sampling estimator, with the guide as "
        "proposal when there is one)",
    )
    p.add_argument(
        "--budgets",
        default="10,100,1000",
        help="comma-separated budgets: particles per answer, chains for ais (default 10,100,1000)",
    )
    p.add_argument("--steps", type=int, default=None, help="ais: annealing steps (default 48)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument(
        "--plot",
        default=None,
        help="write a PNG of error (or estimate) against seconds per answer (default: none)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")
    add_quiet(p)
    add_seed(p)
    add_base(p)
    p.set_defaults(run=run)


def _method_choices() -> str:
    from retro.inference import registrations

    return ", ".join(v for r in registrations() for v in dict.fromkeys([r.name, *r.variants()]))


def _budgets(text: str) -> list[int]:
    try:
        return [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise RetroError(f"--budgets must be comma-separated integers, got {text!r}") from None


def point_label(row) -> str:
    """A plotted row's label: its budget, how many answers have k-hat over the threshold, and the smallest ESS."""
    ess = "-" if row.ess_min is None or math.isnan(row.ess_min) else f"{row.ess_min:.3g}"
    return f"{row.budget} (k>{row.khat_over_threshold}/{row.num_answers}, ESS {ess})"


def plot_comparison(path: str, rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_exact = rows[0].mean_abs_error is not None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        x = [r.seconds_per_answer for r in mine]
        y = [max(r.mean_abs_error, 1e-6) if with_exact else r.log_prob_mean for r in mine]
        ax.plot(x, y, "o-", label=method)
        for r, xi, yi in zip(mine, x, y):
            ax.annotate(point_label(r), (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xscale("log")
    if with_exact:
        ax.set_yscale("log")
    ax.set_xlabel("seconds per answer")
    ax.set_ylabel("mean |estimate - exact log p| (nats)" if with_exact else "mean estimated log p (nats)")
    ax.set_title(
        "Estimator error against compute\n(labels: budget (answers over the k-hat threshold, smallest ESS))",
        fontsize="medium",
    )
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def run(args) -> int:
    from retro.inference.compare import compare, default_methods
    from retro.inference.log_weights import preferred_proposal

    if args.plot:  # before any work
        check_output_file(args.plot, args.overwrite, [data_file(args.data)], flag="--plot")
    seed_everything(args.seed)
    model = load_model(args.model, args.device, base=args.base)
    pairs = load_data(args.data, model.program, args.n, args.seed)
    methods = (
        args.methods.split(",")
        if args.methods
        else default_methods(model.guide is not None, preferred_proposal(model.guide))
    )
    budgets = _budgets(args.budgets)
    bar = tqdm(total=len(methods) * len(budgets), desc="compare", unit="row", disable=not show_progress(args))
    with bar:
        result = compare(
            model.program,
            pairs.questions,
            pairs.answers,
            methods,
            budgets,
            guide=model.guide,
            seed=args.seed,
            on_row=lambda row: bar.update(1),
            options={} if args.steps is None else {"ais": {"num_steps": args.steps}},
        )
    rows = [row.to_dict() for row in result.rows]
    if args.format == "json":
        print(
            json.dumps(
                {
                    "model": args.model,
                    "data": args.data,
                    "num_answers": len(pairs),
                    "exact_available": result.exact is not None,
                    "rows": rows,
                }
            )
        )
    else:
        write_records(rows, "table")
    if args.plot:
        atomic_write(args.plot, lambda tmp: plot_comparison(tmp, result.rows))
    return 0
