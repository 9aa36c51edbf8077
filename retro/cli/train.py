"""``retro train``: fit a built-in imitator by retrodiction (ELBO with an amortized guide), adversarially, or both."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from retro.checkpoint import CONFIG_FILE
from retro.cli.common import add_seed, load_data, seed_everything
from retro.data import split_pairs
from retro.datasets import codecs_for
from retro.errors import RetroError
from retro.inference.train import COSINE_FINAL_FRACTION, LR_SCHEDULES
from retro.lm.finetune import FINETUNE_MODES
from retro.nets import DECODERS

DEFAULT_STEPS = 2000


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train an imitator by retrodiction or adversarially",
        description="Train a built-in imitator by maximizing the ELBO (retrodiction: the checkpoint with the best "
        "held-out log p is kept in --out), against a discriminator (adversarial: the imitator is run forward as "
        "a sampler, score-function gradient; the latest checkpoint is kept), or both (mixed: ELBO + lambda x "
        "adversarial loss).",
    )
    p.add_argument("--imitator", help="built-in imitator name (see 'retro imitators')")
    p.add_argument("--data", help="JSONL/CSV with question and answer fields, or human:NAME")
    p.add_argument("--out", help="directory for the checkpoint")
    p.add_argument(
        "--resume",
        default=None,
        metavar="DIR",
        help="continue the run saved in DIR with its settings (--steps: the new total; --minutes: a new cap)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=100,
        help="steps between training-state checkpoints in OUT/state (default 100)",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=None,
        help="retrodiction: stop after this many evaluations without a better held-out log p",
    )
    p.add_argument("--n", type=int, default=None, help="use the first N pairs (or draw N from a human)")
    p.add_argument("--heldout", default=None, help="held-out data spec (default: 10%% of --data)")
    p.add_argument("--minutes", type=float, default=None, help="wall-time cap")
    p.add_argument("--steps", type=int, default=None, help=f"optimizer steps (default {DEFAULT_STEPS})")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3, help="Adam step size (the peak one under --lr-schedule)")
    p.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="constant",
        help=f"cosine: the step size falls along a half cosine to {COSINE_FINAL_FRACTION * 100:g}%% of --lr at --steps "
        "(give --steps that --minutes lets the run reach)",
    )
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--max-length", type=int, default=32, help="longest answer in tokens (default 32)")
    p.add_argument("--hidden-dim", type=int, default=128)
    p.add_argument("--latent-dim", type=int, default=None, help="latent imitator: size of z (default 8)")
    p.add_argument("--num-styles", type=int, default=None, help="mixture imitator: number of styles")
    p.add_argument(
        "--decoder",
        choices=DECODERS,
        default="gru",
        help="gru: the question as one vector; attention: also attends to each character of the question; "
        "transformer (default gru)",
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        help="dropout rate in the imitator's encoder and decoder during training steps (default 0)",
    )
    p.add_argument(
        "--codec",
        choices=("auto", "bytes"),
        default="auto",
        help="auto: the data's own codecs when it is a built-in dataset that names them (cmudict-g2p: a token per "
        "phoneme, words by letter), else UTF-8 bytes; bytes: UTF-8 bytes for questions and answers",
    )
    p.add_argument(
        "--objective",
        choices=("retrodiction", "iwae", "adversarial", "mixed"),
        default="retrodiction",
        help="retrodiction: the ELBO; iwae: the importance-weighted bound (DReG gradients); adversarial; mixed",
    )
    p.add_argument(
        "--train-particles", type=int, default=8, help="iwae: particles per answer for training (default 8)"
    )
    p.add_argument(
        "--kl-anneal",
        choices=("none", "linear", "cyclical"),
        default="none",
        help="retrodiction: KL annealing schedule (with a closed-form KL per dimension)",
    )
    p.add_argument("--kl-warmup", type=int, default=1000, help="linear KL annealing: steps to reach 1")
    p.add_argument("--kl-cycle", type=int, default=1000, help="cyclical KL annealing: cycle length in steps")
    p.add_argument(
        "--free-bits", type=float, default=0.0, help="retrodiction: KL floor per latent dimension, in nats"
    )
    p.add_argument(
        "--adversarial-weight",
        type=float,
        default=1.0,
        help="lambda, weight of the adversarial loss (default 1)",
    )
    p.add_argument(
        "--verifier",
        default=None,
        help="adversarial: verifier whose verdict the discriminator sees (built-in name or module:function)",
    )
    p.add_argument("--disc-lr", type=float, default=1e-3, help="adversarial: discriminator step size")
    p.add_argument(
        "--base",
        default=None,
        metavar="DIR",
        help="language-model imitators (lm, lm-persona, lm-soft-prompt): the base model directory (local, "
        "safetensors weights; never recorded in the checkpoint, so give it again to every command, --resume too)",
    )
    p.add_argument(
        "--template",
        default=None,
        help="language-model imitators: the prompt, with a {question} slot (trailing whitespace belongs to the answer)",
    )
    p.add_argument(
        "--finetune",
        choices=FINETUNE_MODES,
        default="lora",
        help="language-model imitators: lora (adapters on the frozen base, default), latent (persona weights or "
        "soft-prompt map only), all (every weight) or none",
    )
    p.add_argument("--lora-rank", type=int, default=8, help="language-model imitators: LoRA rank (default 8)")
    p.add_argument(
        "--persona",
        action="append",
        default=None,
        metavar="TEXT",
        help="lm-persona: one persona text read before the prompt (repeat for each persona)",
    )
    p.add_argument(
        "--prompt-length", type=int, default=None, help="lm-soft-prompt: number of soft-prompt embeddings"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint in --out")
    p.add_argument("--device", default="cpu")
    add_seed(p)
    p.set_defaults(run=run)


STATE_DIR = "state"  # inside --out: the training state that --resume continues from
HISTORY_FILE = "history.jsonl"
SETTINGS = (  # what a resumed run takes from the saved one
    "imitator",
    "data",
    "out",
    "n",
    "heldout",
    "batch_size",
    "lr",
    "lr_schedule",
    "eval_every",
    "max_length",
    "hidden_dim",
    "latent_dim",
    "num_styles",
    "decoder",
    "dropout",
    "codec",
    "objective",
    "adversarial_weight",
    "verifier",
    "disc_lr",
    "device",
    "seed",
    "train_particles",
    "kl_anneal",
    "kl_warmup",
    "kl_cycle",
    "free_bits",
    "checkpoint_every",
    "patience",
    "steps",
    "minutes",
    "template",
    "finetune",
    "lora_rank",
    "persona",
    "prompt_length",
)  # never --base: a path the run would open; --resume is given it again


def _resumed_settings(args):
    """The saved run's settings and state; --steps (the new total) and --minutes replace the saved ones."""
    from retro.inference.train_state import load_train_state

    state, info = load_train_state(Path(args.resume) / STATE_DIR)
    saved = info.get("settings")
    if not isinstance(saved, dict):
        raise RetroError(f"{args.resume}: the training state does not record the run's settings")
    args.saved_base_sha256 = saved.get("base_sha256")
    given_steps, given_minutes = args.steps, args.minutes
    for key in SETTINGS:
        setattr(args, key, saved.get(key))
    args.out = args.resume
    args.steps = given_steps if given_steps is not None else args.steps
    if args.patience is not None and state.evaluations_since_best >= args.patience:
        raise RetroError(
            f"{args.resume} stopped early (no better held-out log p in {args.patience} evaluations); "
            "there is nothing to resume"
        )
    if args.steps <= state.step:
        raise RetroError(f"{args.resume} already ran {state.step} steps; give --steps above that to continue")
    args.minutes = given_minutes if given_minutes is not None else args.minutes
    return state


def _language_model_options(args) -> dict:
    """The keyword arguments of a language-model imitator (``--base`` is required, and never saved)."""
    from retro.lm import DEFAULT_TEMPLATE, load_base

    if not args.base:
        raise RetroError(
            f"imitator {args.imitator!r} is built on a pretrained language model: give --base DIR"
        )
    options = {
        "base": load_base(args.base, device=args.device),
        "template": args.template if args.template is not None else DEFAULT_TEMPLATE,
        "max_length": args.max_length,
        "finetune": args.finetune or "lora",
        "lora_rank": args.lora_rank or 8,
        "dropout": args.dropout or 0.0,
    }
    if args.imitator == "lm-persona":
        options["personas"] = args.persona or []
    elif args.persona:
        raise RetroError("--persona is for the lm-persona imitator")
    if args.imitator == "lm-soft-prompt":
        options.update(
            {k: v for k, v in (("latent_dim", args.latent_dim), ("prompt_length", args.prompt_length)) if v}
        )
    return options


def run(args) -> int:
    from retro.discriminators import NeuralDiscriminator
    from retro.inference import AmortizedGuide, latent_sites
    from retro.inference.adversarial import AdversarialObjective
    from retro.inference.collapse import CollapseAwareELBO
    from retro.inference.iwae import IWAEObjective
    from retro.inference.train import TrainConfig, train
    from retro.inference.train_state import save_train_state
    from retro.inference.trained import save_trained
    from retro.models import make_imitator, needs_base
    from retro.verifiers import verifier_from_spec

    state = None
    if args.resume:
        state = _resumed_settings(args)
    else:
        missing = [f"--{k}" for k in ("imitator", "data", "out") if getattr(args, k) is None]
        if missing:
            raise RetroError(f"give {', '.join(missing)} (or --resume DIR)")
        if (Path(args.out) / CONFIG_FILE).exists() and not args.overwrite:
            raise RetroError(f"{args.out} already holds a checkpoint; pass --overwrite to replace it")
        if args.overwrite:  # never let --resume pick up the replaced run's state
            shutil.rmtree(Path(args.out) / STATE_DIR, ignore_errors=True)
        args.steps = DEFAULT_STEPS if args.steps is None else args.steps
    out = Path(args.out)
    for name, value in (("--checkpoint-every", args.checkpoint_every), ("--patience", args.patience)):
        if value is not None and value < 1:
            raise RetroError(f"{name} must be >= 1, got {value}")
    if args.objective in ("retrodiction", "iwae") and args.verifier:
        raise RetroError("--verifier is for the adversarial and mixed objectives")
    verifier = verifier_from_spec(args.verifier) if args.verifier else None
    seed_everything(args.seed)
    extra = {
        k: v for k, v in (("latent_dim", args.latent_dim), ("num_styles", args.num_styles)) if v is not None
    }
    try:
        if needs_base(args.imitator):
            imitator = make_imitator(args.imitator, **_language_model_options(args))
        else:
            codecs = (
                codecs_for(args.data) if args.codec == "auto" else None
            )  # a run saved before --codec: bytes
            if codecs is not None:
                extra.update(codec=codecs[0], question_codec=codecs[1])
            imitator = make_imitator(
                args.imitator,
                max_length=args.max_length,
                hidden_dim=args.hidden_dim,
                decoder=args.decoder,
                dropout=args.dropout or 0.0,
                **extra,
            )
    except TypeError as e:
        raise RetroError(f"imitator {args.imitator!r}: {e}") from None
    imitator.to(args.device)
    base_sha256 = getattr(imitator, "base_sha256", None)
    saved_sha256 = getattr(args, "saved_base_sha256", None)
    if state is not None and saved_sha256 is not None and saved_sha256 != base_sha256:
        raise RetroError(
            f"--base {args.base} is not the base model {args.resume} was trained on (weights sha256 "
            f"{str(base_sha256)[:12]}..., recorded {saved_sha256[:12]}...)"
        )
    pairs = load_data(args.data, imitator, args.n, args.seed)
    if args.heldout:
        train_pairs, heldout = pairs, load_data(args.heldout, imitator, None, args.seed + 1)
    else:
        train_pairs, heldout = split_pairs(pairs, 0.1, args.seed)
    guide = (
        AmortizedGuide(imitator, hidden_dim=max(32, args.hidden_dim // 2)).to(args.device)
        if latent_sites(imitator)
        else None
    )
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        lr_schedule=args.lr_schedule or "constant",
        minutes=args.minutes,
        eval_every=args.eval_every,
        seed=args.seed,
        progress=sys.stderr.isatty(),
        checkpoint_every=args.checkpoint_every,
        patience=args.patience,
    )
    objective = None
    collapse_tools = args.kl_anneal != "none" or args.free_bits > 0
    if args.objective == "iwae":
        if guide is None:
            raise RetroError(f"--objective iwae needs an imitator with latents; {args.imitator!r} has none")
        objective = IWAEObjective(imitator, guide, num_particles=args.train_particles)
    if collapse_tools and (args.objective != "retrodiction" or guide is None):
        raise RetroError(
            "--kl-anneal and --free-bits are for retrodiction training of an imitator with latents"
        )
    if collapse_tools:
        objective = CollapseAwareELBO(
            imitator,
            guide,
            schedule=args.kl_anneal,
            warmup=args.kl_warmup,
            cycle=args.kl_cycle,
            free_bits=args.free_bits,
        )
    elif args.objective in ("adversarial", "mixed"):
        discriminator = NeuralDiscriminator(
            imitator.codec, imitator.max_length, verifier=verifier, question_codec=imitator.question_codec
        ).to(args.device)
        objective = AdversarialObjective(
            imitator,
            discriminator,
            guide,
            adversarial_weight=args.adversarial_weight,
            retrodiction_weight=1.0 if args.objective == "mixed" else 0.0,
            discriminator_lr=args.disc_lr,
        )
    info = {
        "data": args.data,
        "objective": args.objective,
        "train_pairs": len(train_pairs),
        "heldout_pairs": len(heldout),
        "config": {k: v for k, v in vars(config).items()},
    }

    def save(report) -> None:
        save_trained(
            out,
            imitator,
            guide,
            {**info, "best_step": report.best_step, "best_heldout_log_prob": report.best_heldout},
        )

    settings = {k: getattr(args, k) for k in SETTINGS}
    if base_sha256 is not None:
        settings["base_sha256"] = base_sha256

    def checkpoint(train_state) -> None:
        save_train_state(out / STATE_DIR, train_state, {"settings": settings})

    out.mkdir(parents=True, exist_ok=True)
    with open(out / HISTORY_FILE, "w", encoding="utf-8") as log:  # one line per evaluation, as they come
        for row in state.history if state is not None else []:
            log.write(json.dumps(row) + "\n")

        def append(row) -> None:
            log.write(json.dumps(row) + "\n")
            log.flush()

        report = train(
            imitator,
            train_pairs.questions,
            train_pairs.answers,
            guide=guide,
            heldout=(heldout.questions, heldout.answers),
            config=config,
            on_improve=save,
            objective=objective,
            on_evaluate=append,
            on_checkpoint=checkpoint,
            resume=state,
        )
    print(
        json.dumps(
            {
                "out": str(out),
                "steps": report.steps,
                "seconds": round(report.seconds, 1),
                "best_step": report.best_step,
                "best_heldout_log_prob": report.best_heldout,
                "stopped_early": report.stopped_early,
                "resumed_from_step": state.step if state is not None else None,
            }
        )
    )
    return 0
