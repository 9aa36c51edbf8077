"""``retro sample``: answers drawn from a model for given questions."""

from __future__ import annotations

from retro.cli.common import add_base, add_seed, load_model, seed_everything, write_records
from retro.data import load_pairs
from retro.errors import RetroError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sample", help="draw answers from a model", description="Draw answers from a model."
    )
    p.add_argument("--model", required=True, help="directory written by 'retro train', or human:NAME")
    p.add_argument("--questions", nargs="+", default=None, help="questions to answer")
    p.add_argument("--data", default=None, help="take the questions from this data spec instead")
    p.add_argument("--n", type=int, default=10, help="with --data: number of questions (default 10)")
    p.add_argument("--num-samples", type=int, default=3, help="answers per question (default 3)")
    p.add_argument(
        "--temperature", type=float, default=1.0, help="sampling temperature of the answer (default 1)"
    )
    p.add_argument("--format", choices=("jsonl", "table"), default="table")
    p.add_argument("--device", default="cpu")
    add_seed(p)
    add_base(p)
    p.set_defaults(run=run)


def run(args) -> int:
    if (args.questions is None) == (args.data is None):
        raise RetroError("give either --questions or --data")
    if args.num_samples < 1:
        raise RetroError(f"--num-samples must be >= 1, got {args.num_samples}")
    from retro.tempering import tempered

    seed_everything(args.seed)
    program = tempered(load_model(args.model, args.device, base=args.base).program, args.temperature)
    questions = args.questions or load_pairs(args.data, n=args.n, seed=args.seed).questions
    samples = program.sample(questions, num_samples=args.num_samples)
    rows = [
        {"question": q, "sample": i, "answer": s}
        for q, answers in zip(questions, samples)
        for i, s in enumerate(answers)
    ]
    write_records(rows, args.format)
    return 0
