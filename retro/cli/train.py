"""``retro train``: fit a built-in imitator by retrodiction (ELBO with an amortized guide), adversarially, or both."""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path

import torch

from retro.cli.common import MAX_SEED, add_seed, load_data, seed_everything
from retro.cli.train_members import is_ensemble_run, run_members
from retro.data import data_file, load_pairs, split_pairs
from retro.datasets import codecs_for, recommended_settings
from retro.errors import RetroError
from retro.inference.guides import GUIDE_ENCODERS, SAVED_BEFORE_ENCODER
from retro.inference.run_directory import (
    HISTORY_FILE,
    STATE_DIR,
    check_run_directory,
    clear_previous_run,
    open_history,
)
from retro.inference.train import COSINE_FINAL_FRACTION, LR_SCHEDULES
from retro.lm.finetune import FINETUNE_MODES
from retro.models.ensemble import MAX_MEMBERS
from retro.nets import DECODERS
from retro.outlock import locked_output_directory
from retro.safepaths import check_output_directory, refuse_symlink
from retro.text import ByteCodec
from retro.verifiers import VERIFIERS

DEFAULT_STEPS = 2000  # without --minutes; with it, as many steps as the time allows
MAX_LENGTH_MARGIN = (
    0.25  # the longest training answer, plus a quarter (at least 4 tokens): --max-length's default
)
DEFAULTS = {  # settings a built-in dataset may recommend otherwise (retro.datasets.recommended_settings)
    "members": 1,
    "batch_size": 64,
    "length_buckets": 50,
    "average_decay": 0,
    "lr": 2e-3,
    "lr_schedule": "cosine",
    "eval_every": 1000,
    "hidden_dim": 256,
    "decoder": "attention",
    "dropout": 0.1,
    "kl_anneal": "none",
    "kl_warmup": 1000,
    "kl_cycle": 1000,
    "guide_encoder": "ngram",
    "label_smoothing": 0.0,
}
NO_DROPOUT = {"dropout": 0.0}
IMITATOR_DEFAULTS = {
    "latent": NO_DROPOUT,
    "lm": NO_DROPOUT,
    "lm-persona": NO_DROPOUT,
    "lm-soft-prompt": NO_DROPOUT,
}
"""Where an imitator's defaults differ from ``DEFAULTS``: the latent imitator's z is noise of its own (on CMUdict
it matched ``seq2seq --dropout 0.1`` without dropout), and the language models keep their pretrained behaviour."""
LATENT_DEFAULTS = {"free_bits": 0.1}
"""Free bits for retrodiction (ELBO) training of an imitator with continuous latents: a used latent whatever the
run's length (without KL annealing: a warm-up counted in steps would outlast a short --minutes run)."""
PLAIN_DEFAULTS = {"free_bits": 0.0}
"""Everywhere else (no latent, a discrete one, or another objective): off."""
SAVED_BEFORE = {  # what a run saved before retro recorded a setting used (the defaults of that time)
    "batch_size": 64,
    "length_buckets": 0,
    "average_decay": 0,
    "lr": 3e-3,
    "lr_schedule": "constant",
    "eval_every": 200,
    "hidden_dim": 128,
    "decoder": "gru",
    "dropout": 0.0,
    "kl_anneal": "none",
    "kl_warmup": 1000,
    "kl_cycle": 1000,
    "free_bits": 0.0,
    "guide_encoder": SAVED_BEFORE_ENCODER,
    "label_smoothing": 0.0,
}
MAX_HELDOUT = 1000  # pairs held out of --data without --heldout: evaluations score 200 of them
COLLAPSE_SETTINGS = ("kl_anneal", "kl_warmup", "kl_cycle", "free_bits")
RECOMMENDED = "; a built-in dataset may recommend another"
FOR_LATENTS = (
    "{latent} for continuous latents trained by retrodiction, else {plain}"  # LATENT_/PLAIN_DEFAULTS
)


def _default(name: str) -> str:
    if name in LATENT_DEFAULTS:
        value = FOR_LATENTS.format(latent=LATENT_DEFAULTS[name], plain=PLAIN_DEFAULTS[name])
    else:
        value = DEFAULTS[name]
    return f"(default {value}{RECOMMENDED})"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train an imitator by retrodiction or adversarially",
        description="Train a built-in imitator by maximizing the ELBO (retrodiction: the checkpoint with the "
        "best held-out log p, or a later one within 2 Monte Carlo standard errors of it, is kept in --out), "
        "against a discriminator (adversarial: the imitator is run forward as a sampler, score-function "
        "gradient; the latest checkpoint is kept), or both (mixed: ELBO + lambda x adversarial loss).",
    )
    p.add_argument("--imitator", help="imitator name, see 'retro imitators' (required unless --resume)")
    p.add_argument(
        "--data",
        help="JSONL/CSV with question and answer fields, human:NAME or builtin:NAME:SPLIT (required unless --resume)",
    )
    p.add_argument("--out", help="directory for the checkpoint (required unless --resume)")
    p.add_argument(
        "--resume",
        default=None,
        metavar="DIR",
        help="continue the run saved in DIR with its settings (--steps: the new total; --minutes: the new total "
        "budget of a run without --steps, else a new cap) (default: a new run)",
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
        help="retrodiction: stop after this many evaluations without a better held-out log p (default: never)",
    )
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help="use the first N pairs, or draw N from a human (default: all; 1000)",
    )
    p.add_argument(
        "--heldout",
        default=None,
        help=f"held-out data spec (default: 10%% of --data, at most {MAX_HELDOUT} pairs; the rest is trained on)",
    )
    p.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="training time: alone, the run's budget (it trains until the time is up, and --lr-schedule follows "
        "the clock); with --steps, a wall-time cap (default: none)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"optimizer steps (default: as many as --minutes allows; {DEFAULT_STEPS} without --minutes)",
    )
    p.add_argument("--batch-size", type=int, default=None, help=f"answers per step {_default('batch_size')}")
    p.add_argument(
        "--average-decay",
        type=float,
        default=None,
        help="evaluate and keep a moving average of the parameters with this decay per step, e.g. 0.999 "
        f"(Polyak averaging); 0: the parameters as they are {_default('average_decay')}",
    )
    p.add_argument(
        "--members",
        type=int,
        default=None,
        help="train this many imitators side by side, one process each (seeds SEED, SEED+1, ...; the threads "
        "shared out between them), each in OUT/members/K, and save their ensemble in OUT: its next-token "
        f"distribution is the average of theirs {_default('members')}",
    )
    p.add_argument(
        "--length-buckets",
        type=int,
        default=None,
        help="minibatches of answers of similar length: each pool of this many shuffled minibatches is sorted by "
        f"length before it is cut (fewer padded positions, faster steps); 0: plain random minibatches "
        f"{_default('length_buckets')}",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"Adam step size, the peak one under --lr-schedule {_default('lr')}",
    )
    p.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default=None,
        help=f"cosine: the step size falls along a half cosine to {COSINE_FINAL_FRACTION * 100:g}%% of --lr at "
        f"--steps, or when --minutes are up {_default('lr_schedule')}",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help=f"steps between held-out evaluations {_default('eval_every')}",
    )
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help=f"longest answer in tokens (default: the longest training answer plus {MAX_LENGTH_MARGIN * 100:g}%%, at "
        f"least 4 more{RECOMMENDED})",
    )
    p.add_argument(
        "--hidden-dim", type=int, default=None, help=f"width of the networks {_default('hidden_dim')}"
    )
    p.add_argument("--latent-dim", type=int, default=None, help="latent imitator: size of z (default 8)")
    p.add_argument(
        "--num-styles", type=int, default=None, help="mixture imitator: number of styles (default 4)"
    )
    p.add_argument(
        "--decoder",
        choices=DECODERS,
        default=None,
        help="gru: the question as one vector; attention: also attends to each character of the question; "
        f"transformer {_default('decoder')}",
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=None,
        help="dropout rate in the imitator's encoder and decoder during training steps (default "
        f"{DEFAULTS['dropout']}; {NO_DROPOUT['dropout']} for {', '.join(IMITATOR_DEFAULTS)} and the "
        f"{' and '.join(SAMPLED_OBJECTIVES)} objectives{RECOMMENDED})",
    )
    p.add_argument(
        "--label-smoothing",
        type=float,
        default=None,
        help="train on label-smoothed answer log probabilities with this epsilon (each phoneme or character's "
        "target mixed with epsilon of a uniform one); evaluations and scores are of the model as it is, for the "
        f"retrodiction and iwae objectives {_default('label_smoothing')}",
    )
    p.add_argument(
        "--guide-encoder",
        choices=GUIDE_ENCODERS,
        default=None,
        help="how the amortized guide of an imitator with latents reads the question and the answer: ngram "
        "(max-pooled n-gram features: a latent step costs 0-4%% more than a seq2seq step) or gru "
        f"(bidirectional GRUs: 10-14%% more) {_default('guide_encoder')}",
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
        choices=OBJECTIVES,
        default="retrodiction",
        help="retrodiction: the ELBO; iwae: the importance-weighted bound (DReG gradients); adversarial; mixed",
    )
    p.add_argument(
        "--train-particles", type=int, default=8, help="iwae: particles per answer for training (default 8)"
    )
    p.add_argument(
        "--kl-anneal",
        choices=KL_SCHEDULES,
        default=None,
        help=f"retrodiction: KL annealing schedule (with a closed-form KL per dimension) {_default('kl_anneal')}",
    )
    p.add_argument(
        "--kl-warmup",
        type=int,
        default=None,
        help=f"linear KL annealing: steps to reach 1 {_default('kl_warmup')}",
    )
    p.add_argument(
        "--kl-cycle",
        type=int,
        default=None,
        help=f"cyclical KL annealing: cycle length in steps {_default('kl_cycle')}",
    )
    p.add_argument(
        "--free-bits",
        type=float,
        default=None,
        help=f"retrodiction: KL floor per latent dimension, in nats {_default('free_bits')}",
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
        help="adversarial: verifier whose verdict the discriminator sees, a built-in name or module:function "
        "(default: none)",
    )
    p.add_argument("--disc-lr", type=float, default=1e-3, help="adversarial: discriminator step size")
    p.add_argument(
        "--base",
        default=None,
        metavar="DIR",
        help="language-model imitators (lm, lm-persona, lm-soft-prompt): the base model directory (local, "
        "safetensors weights; never recorded in the checkpoint, so give it again to every command, --resume too; "
        "default: none)",
    )
    p.add_argument(
        "--template",
        default=None,
        help="language-model imitators: the prompt, with a {question} slot (trailing whitespace belongs to the answer; "
        "default: retro.lm.DEFAULT_TEMPLATE)",
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
        help="lm-persona: one persona text read before the prompt (repeat for each persona; default: none)",
    )
    p.add_argument(
        "--prompt-length",
        type=int,
        default=None,
        help="lm-soft-prompt: number of soft-prompt embeddings (default: the imitator's)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint in --out")
    p.add_argument(
        "--slices",
        type=int,
        default=None,
        help="cut each minibatch into this many slices, each with its own random stream (default: one per "
        "process under torchrun); a fixed number gives the same run on any number of processes dividing it",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: each process its local GPU)")
    add_seed(p)
    p.set_defaults(run=run)


OBJECTIVES = ("retrodiction", "iwae", "adversarial", "mixed")
SAMPLED_OBJECTIVES = ("adversarial", "mixed")  # they run the imitator forward as a sampler
KL_SCHEDULES = ("none", "linear", "cyclical")
SETTINGS = (  # what a resumed run takes from the saved one
    "imitator",
    "data",
    "out",
    "n",
    "heldout",
    "max_heldout",
    "batch_size",
    "length_buckets",
    "average_decay",
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
    "guide_encoder",
    "label_smoothing",
    "checkpoint_every",
    "patience",
    "steps",
    "minutes",
    "slices",
    "template",
    "finetune",
    "lora_rank",
    "persona",
    "prompt_length",
)  # never --base: a path the run would open; --resume is given it again


def _integer(low: int, high: int = MAX_SEED):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _number(low: float, high: float = math.inf, open_high: bool = False):
    def check(v) -> bool:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            return False
        return low <= v < high if open_high else low <= v <= high

    return check


def _one_of(choices):
    return lambda v: isinstance(v, str) and v in choices


def _text(v) -> bool:
    return isinstance(v, str) and "\0" not in v


def _optional(check):
    return lambda v: v is None or check(v)


POSITIVE = _integer(1)
# What each setting may be, whether typed or restored from a saved state: data (numbers, names from retro's own
# tables), never code. Settings that older states lack may be None.
SETTING_RULES = {
    "members": (_optional(_integer(1, MAX_MEMBERS)), f"an integer from 1 to {MAX_MEMBERS}"),
    "imitator": (_text, "a built-in imitator"),  # make_imitator names the built-in ones
    "data": (_text, "a data spec"),
    "heldout": (_optional(_text), "a data spec"),
    "max_heldout": (_optional(POSITIVE), "an integer >= 1"),
    "out": (_optional(_text), "a directory"),
    "n": (_optional(POSITIVE), "an integer >= 1"),
    "batch_size": (POSITIVE, "an integer >= 1"),
    "length_buckets": (_optional(_integer(0, 10**6)), "an integer from 0 to 1000000"),
    "average_decay": (_optional(_number(0, 1, open_high=True)), "a number in [0, 1)"),
    "lr": (_number(0), "a finite number >= 0"),
    "lr_schedule": (_optional(_one_of(LR_SCHEDULES)), f"one of {', '.join(LR_SCHEDULES)}"),
    "eval_every": (POSITIVE, "an integer >= 1"),
    "max_length": (POSITIVE, "an integer >= 1"),
    "hidden_dim": (POSITIVE, "an integer >= 1"),
    "latent_dim": (_optional(POSITIVE), "an integer >= 1"),
    "num_styles": (_optional(POSITIVE), "an integer >= 1"),
    "decoder": (_optional(_one_of(DECODERS)), f"one of {', '.join(DECODERS)}"),
    "dropout": (_optional(_number(0, 1, open_high=True)), "a number in [0, 1)"),
    "label_smoothing": (_optional(_number(0, 1, open_high=True)), "a number in [0, 1)"),
    "codec": (_optional(_one_of(("auto", "bytes"))), "auto or bytes"),
    "objective": (_one_of(OBJECTIVES), f"one of {', '.join(OBJECTIVES)}"),
    "adversarial_weight": (_number(-math.inf), "a finite number"),
    "verifier": (_optional(_text), "a verifier name"),
    "disc_lr": (_number(0), "a finite number >= 0"),
    "device": (_text, "a device name"),
    "seed": (_integer(0), "an integer from 0 to 2**63 - 1"),
    "train_particles": (_optional(POSITIVE), "an integer >= 1"),
    "kl_anneal": (_optional(_one_of(KL_SCHEDULES)), f"one of {', '.join(KL_SCHEDULES)}"),
    "kl_warmup": (_optional(POSITIVE), "an integer >= 1"),
    "kl_cycle": (_optional(POSITIVE), "an integer >= 1"),
    "free_bits": (_optional(_number(0)), "a finite number >= 0"),
    "guide_encoder": (_optional(_one_of(GUIDE_ENCODERS)), f"one of {', '.join(GUIDE_ENCODERS)}"),
    "checkpoint_every": (POSITIVE, "an integer >= 1"),
    "patience": (_optional(POSITIVE), "an integer >= 1"),
    "steps": (_optional(POSITIVE), "an integer >= 1"),
    "minutes": (_optional(_number(0)), "a finite number > 0"),
    "slices": (_optional(POSITIVE), "an integer >= 1"),
    "template": (_optional(_text), "a prompt template"),
    "finetune": (_optional(_one_of(FINETUNE_MODES)), f"one of {', '.join(FINETUNE_MODES)}"),
    "lora_rank": (_optional(POSITIVE), "an integer >= 1"),
    "persona": (_optional(lambda v: isinstance(v, list) and all(map(_text, v))), "a list of persona texts"),
    "prompt_length": (_optional(POSITIVE), "an integer >= 1"),
}


def _check_settings(args, source: str | None) -> None:
    """Every setting valid (``source``: where saved settings came from; ``None``: typed flags)."""
    for key, (check, expected) in SETTING_RULES.items():
        value = getattr(args, key, None)
        if not check(value) or (key == "minutes" and value is not None and value <= 0):
            name = f"--{key.replace('_', '-')}" if source is None else f"setting {key!r} in {source}"
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise RetroError(f"{name} must be {expected}, got {shown}")


def _restored_verifier(saved, given, state_dir: str):
    """Only flags the user types name code: a saved ``module:function`` must be typed again with --verifier."""
    if saved is not None and not _text(saved):
        raise RetroError(
            f"setting 'verifier' in {state_dir} must be a verifier name, got {type(saved).__name__}"
        )
    if saved is None or given == saved or (saved in VERIFIERS and given is None):
        if saved is None and given is not None:
            raise RetroError(f"--verifier {given!r}: the run saved in {state_dir} had no verifier")
        return saved
    if given is None:
        raise RetroError(
            f"the run saved in {state_dir} used the verifier {saved!r}, which names code: a resumed run imports "
            f"nothing a file names; give --verifier {saved} again if you trust it"
        )
    raise RetroError(f"--verifier {given!r} differs from the saved run's verifier {saved!r}")


def _resumed_settings(args):
    """The saved run's settings and state; --steps (the new total) and --minutes replace the saved ones."""
    from retro.inference.train_state import load_train_state

    state_dir = Path(args.resume) / STATE_DIR
    refuse_symlink(state_dir, "the training state")
    state, info = load_train_state(state_dir)
    saved = info.get("settings")
    if not isinstance(saved, dict):
        raise RetroError(f"{args.resume}: the training state does not record the run's settings")
    args.saved_base_sha256 = saved.get("base_sha256")
    given = {key: getattr(args, key) for key in ("steps", "minutes", "data", "heldout", "verifier")}
    for key in SETTINGS:
        setattr(args, key, saved.get(key))
    args.out = args.resume
    # (a run saved before the held-out cap existed held out 10% of --data: max_heldout stays None, as it had)
    for key, value in SAVED_BEFORE.items():  # a run saved before the setting existed
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("data", "heldout"):  # a resumed run opens no path read from its state: files are typed again
        if given[key] is not None:
            setattr(args, key, given[key])
        elif isinstance(saved.get(key), str) and data_file(saved[key]) is not None:
            raise RetroError(
                f"the run saved in {state_dir} read --{key} {saved[key]!r}: a resumed run opens no path read from "
                f"its state; give --{key} again"
            )
    args.verifier = _restored_verifier(saved.get("verifier"), given["verifier"], str(state_dir))
    args.steps = given["steps"] if given["steps"] is not None else args.steps
    args.minutes = given["minutes"] if given["minutes"] is not None else args.minutes
    _check_settings(args, str(state_dir))
    if args.patience is not None and state.evaluations_since_best >= args.patience:
        raise RetroError(
            f"{args.resume} stopped early (no better held-out log p in {args.patience} evaluations); "
            "there is nothing to resume"
        )
    if args.steps is not None and args.steps <= state.step:
        raise RetroError(f"{args.resume} already ran {state.step} steps; give --steps above that to continue")
    if args.steps is None and state.seconds >= 60 * args.minutes:
        raise RetroError(
            f"{args.resume} already trained for its {args.minutes:g} minutes; give --minutes above "
            f"{state.seconds / 60:.1f} (the new total) or --steps to continue"
        )
    return state


def _settle_settings(args, pairs, answer_codec, announce: bool = True) -> None:
    """Fill the settings the user left out: the dataset's recommendation for this imitator, then the defaults,
    and ``max_length`` from the longest answer in ``pairs`` (tokens of the answer codec)."""
    recommended = recommended_settings(args.data, args.imitator)
    if args.objective != "retrodiction":  # the collapse tools are for the ELBO
        recommended = {k: v for k, v in recommended.items() if k not in COLLAPSE_SETTINGS}
    taken = {k: v for k, v in recommended.items() if getattr(args, k, None) is None}
    if taken and announce:
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in taken.items())
        print(f"retro train: {args.data} recommends for {args.imitator}: {flags}", file=sys.stderr)
    sampled = NO_DROPOUT if args.objective in SAMPLED_OBJECTIVES else {}  # they sample without dropout
    for key, value in {**DEFAULTS, **IMITATOR_DEFAULTS.get(args.imitator, {}), **sampled, **taken}.items():
        if getattr(args, key) is None:
            setattr(args, key, value)  # free_bits waits for _settle_collapse_tools
    if args.max_length is None:
        args.max_length = _default_max_length(pairs, answer_codec)
    if args.steps is None and args.minutes is None:
        args.steps = DEFAULT_STEPS
    args.max_heldout = MAX_HELDOUT


def _default_max_length(pairs, answer_codec) -> int:
    """The longest answer in ``pairs`` (tokens of the answer codec) plus a margin."""
    longest = max(len(answer_codec.encode(answer)) for answer in pairs.answers)
    return longest + max(4, math.ceil(MAX_LENGTH_MARGIN * longest))


def _members_max_length(args, members: int) -> int:
    """The ``max_length`` all members train with (members are combined only when they agree): the default rule
    over the data of every member (a seeded draw, ``--n`` or a human, differs from member to member)."""
    codecs = codecs_for(args.data) if args.codec in (None, "auto") else None
    answer_codec = codecs[0] if codecs is not None else ByteCodec()
    seeded = args.n is not None or args.data.startswith("human:")
    return max(
        _default_max_length(load_pairs(args.data, n=args.n, seed=args.seed + k), answer_codec)
        for k in range(members if seeded else 1)
    )


def _settle_collapse_tools(args, guide) -> None:
    """``--free-bits`` left out: on (``LATENT_DEFAULTS``) for retrodiction training of an imitator whose latents
    are all continuous (the domain of the collapse tools), off otherwise."""
    sites = guide.sites.values() if guide is not None else ()
    on = args.objective == "retrodiction" and bool(sites) and not any(site.discrete for site in sites)
    for key, value in (LATENT_DEFAULTS if on else PLAIN_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def _load_language_model_base(args, device):
    """The base model of a language-model imitator (``--base`` is required, and never saved) and the codec its
    answers are written in."""
    from retro.lm import DEFAULT_TEMPLATE, PromptTemplate, TokenizerCodec, load_base

    if not args.base:
        raise RetroError(
            f"imitator {args.imitator!r} is built on a pretrained language model: give --base DIR"
        )
    if args.template is None:
        args.template = DEFAULT_TEMPLATE
    base = load_base(args.base, device=device)
    return base, TokenizerCodec(base.tokenizer, PromptTemplate.of(args.template).separator)


def _language_model_options(args, base) -> dict:
    """The keyword arguments of a language-model imitator."""
    options = {
        "base": base,
        "template": args.template,
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


def _members(args) -> int:
    """How many members a new run trains: --members, else the dataset's recommendation, else 1."""
    if args.members is not None:
        if not 1 <= args.members <= MAX_MEMBERS:
            raise RetroError(f"--members must be an integer from 1 to {MAX_MEMBERS}, got {args.members}")
        return args.members
    recommended = recommended_settings(args.data, args.imitator) if args.data and args.imitator else {}
    members = recommended.get("members", DEFAULTS["members"])
    if members > 1:
        print(
            f"retro train: {args.data} recommends for {args.imitator}: --members {members}", file=sys.stderr
        )
    return members


def run(args) -> int:
    from retro.distributed import join_from_environment, leave

    if args.resume and is_ensemble_run(args.resume):
        return run_members(args, None)
    if args.resume and args.members not in (None, 1):
        raise RetroError(
            f"--members {args.members}: {args.resume!r} is a single run; resume it without --members"
        )
    _check_required(args)
    if not args.resume and (members := _members(args)) > 1:
        from retro.models import needs_base

        if needs_base(args.imitator):
            raise RetroError("--members trains imitators from scratch; not language-model imitators")
        if args.max_length is None:
            args.max_length = _members_max_length(args, members)
        return run_members(args, members)

    world = join_from_environment()
    try:
        return _locked_run(args, world) if world.is_main else _run(args, world)
    finally:
        leave()


def _check_required(args) -> None:
    """A new run names --imitator, --data and --out; a resumed one an existing directory."""
    if not args.resume:
        missing = [f"--{k}" for k in ("imitator", "data", "out") if getattr(args, k) is None]
        if missing:
            raise RetroError(f"give {', '.join(missing)} (or --resume DIR)")
    elif not Path(args.resume).is_dir():
        raise RetroError(f"--resume: no checkpoint directory at {args.resume!r}")


def _locked_run(args, world) -> int:
    """Rank 0: check --out, hold its lock for the whole run (a second run into it fails at once), then train.
    ``run`` has checked the required flags (:func:`_check_required`)."""
    out = Path(args.resume or args.out)
    inputs = [data_file(spec) for spec in (args.data, args.heldout) if spec]
    check_output_directory(out, inputs, "--resume" if args.resume else "--out")
    with locked_output_directory(out):  # a run that failed before writing anything leaves no empty directory
        return _run(args, world)


def _run(args, world) -> int:
    """Every rank builds the same run; rank 0 alone writes the checkpoint, the history and the state."""
    from retro.discriminators import NeuralDiscriminator
    from retro.inference import AmortizedGuide, latent_sites
    from retro.inference.adversarial import AdversarialObjective
    from retro.inference.collapse import CollapseAwareELBO
    from retro.inference.iwae import IWAEObjective
    from retro.inference.train import TrainConfig, train
    from retro.inference.train_state import save_train_state
    from retro.inference.trained import save_trained
    from retro.models import accepted_hyperparameters, make_imitator, needs_base
    from retro.verifiers import verifier_from_spec

    state, replacing = None, False
    if args.resume:
        state = _resumed_settings(args)
        refuse_symlink(Path(args.resume) / HISTORY_FILE, "in --resume,")
    else:
        # rank 0 alone looks at what --out holds (the others would see its first writes)
        replacing = world.is_main and check_run_directory(args.out, args.overwrite)
    out = Path(args.out)
    if args.objective in ("retrodiction", "iwae") and args.verifier:
        raise RetroError("--verifier is for the adversarial and mixed objectives")
    if args.objective in SAMPLED_OBJECTIVES and args.label_smoothing:
        raise RetroError("--label-smoothing is for the retrodiction and iwae objectives")
    verifier = verifier_from_spec(args.verifier) if args.verifier else None
    device = f"cuda:{world.local_rank}" if args.device == "cuda" and world.size > 1 else args.device
    args.slices = (
        args.slices if args.slices is not None else world.size
    )  # saved: a resumed run keeps its draws
    seed_everything(args.seed)
    extra = {
        k: v for k, v in (("latent_dim", args.latent_dim), ("num_styles", args.num_styles)) if v is not None
    }
    base, answer_codec = (
        _load_language_model_base(args, device) if needs_base(args.imitator) else (None, ByteCodec())
    )
    codecs = (
        codecs_for(args.data) if args.codec == "auto" and base is None else None
    )  # saved before --codec: bytes
    if codecs is not None:
        extra.update(codec=codecs[0], question_codec=codecs[1])
        answer_codec = codecs[0]
    pairs = load_pairs(args.data, n=args.n, seed=args.seed)
    if state is None:
        _settle_settings(args, pairs, answer_codec, world.is_main)
        _check_settings(args, None)
    try:
        if base is not None:
            imitator = make_imitator(args.imitator, **_language_model_options(args, base))
        else:
            # Your own imitator gets max_length, hidden_dim, decoder and dropout only where its constructor takes
            # them.
            constructor_settings = accepted_hyperparameters(
                args.imitator,
                {
                    "max_length": args.max_length,
                    "hidden_dim": args.hidden_dim,
                    "decoder": args.decoder,
                    "dropout": args.dropout,
                },
            )
            imitator = make_imitator(args.imitator, **constructor_settings, **extra)
    except TypeError as e:
        raise RetroError(f"imitator {args.imitator!r}: {e}") from None
    imitator.to(device)
    base_sha256 = getattr(imitator, "base_sha256", None)
    saved_sha256 = getattr(args, "saved_base_sha256", None)
    if state is not None and saved_sha256 is not None and saved_sha256 != base_sha256:
        raise RetroError(
            f"--base {args.base} is not the base model {args.resume} was trained on (weights sha256 "
            f"{str(base_sha256)[:12]}..., recorded {saved_sha256[:12]}...)"
        )
    pairs.validate(imitator.codec, imitator.max_length, imitator.question_codec)
    if args.heldout:
        train_pairs, heldout = pairs, load_data(args.heldout, imitator, None, args.seed + 1)
    else:
        train_pairs, heldout = split_pairs(pairs, 0.1, args.seed, args.max_heldout)
    guide = (
        AmortizedGuide(imitator, hidden_dim=max(32, args.hidden_dim // 2), encoder=args.guide_encoder).to(
            device
        )
        if latent_sites(imitator)
        else None
    )
    if state is None:
        _settle_collapse_tools(args, guide)
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        lr_schedule=args.lr_schedule,
        minutes=args.minutes,
        eval_every=args.eval_every,
        seed=args.seed,
        progress=sys.stderr.isatty(),
        checkpoint_every=args.checkpoint_every,
        patience=args.patience,
        slices=args.slices,
        length_buckets=args.length_buckets or None,
        average_decay=args.average_decay or None,
        label_smoothing=args.label_smoothing or None,
    )
    objective = None
    collapse_tools = args.kl_anneal not in (None, "none") or (args.free_bits or 0) > 0
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
        ).to(device)
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

    if state is not None:
        from retro.inference.train_state import check_resumable

        modules = {"imitator": imitator, "guide": guide}
        if isinstance(objective, torch.nn.Module):
            modules["objective"] = objective
        check_resumable(Path(args.resume) / STATE_DIR, state, modules, len(train_pairs))
    run_training = functools.partial(
        train,
        imitator,
        train_pairs.questions,
        train_pairs.answers,
        guide=guide,
        heldout=(heldout.questions, heldout.answers),
        config=config,
        objective=objective,
        resume=state,
        world=world,
    )
    if not world.is_main:  # the other ranks train in step with rank 0 and write nothing
        run_training()
        return 0
    if replacing:  # only now that the inputs are checked; never let --resume pick up the replaced run's state
        clear_previous_run(out)
    with open_history(out, state.history if state is not None else []) as log:  # one line per evaluation

        def append(row) -> None:
            log.write(json.dumps(row) + "\n")
            log.flush()

        report = run_training(on_improve=save, on_evaluate=append, on_checkpoint=checkpoint)
    _warn_unused_latents(report.history)
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


def _warn_unused_latents(history) -> None:
    """A warning on stderr when the last evaluation found a latent unused (its posterior is its prior)."""
    last = next((row for row in reversed(history) if "unused_latents" in row), None)
    for name in last["unused_latents"] if last else []:
        usage = last["latent_usage"][name]
        measure = (
            f"I({name}; answer) = {usage['mutual_information']:.3f} nats"
            if "mutual_information" in usage
            else "0 active units"
        )
        print(
            f"retro train: warning: latent {name!r} is unused at step {last['step']} ({measure}): its posterior "
            "is its prior, so it does not help the score (continuous latents: try --free-bits, --kl-anneal)",
            file=sys.stderr,
        )
