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
# # Quickstart: train an imitator and judge it by retrodiction
#
# An *imitator* is a probabilistic program that, given a question, answers it the way a person would:
# a distribution p(answer | question) over whole strings. *Retrodiction* judges it by the answers people
# really gave: the better the imitator, the higher the log-probability it assigns to held-out human answers.
# When the imitator has latent variables (here: how careful the person is this time), log p integrates
# them out and usually has to be *estimated*; this notebook compares the estimators with the exact value.
#
# Set `RETRO_SMOKE=1` to run everything in seconds with tiny sizes (that is what the tests do).

# %%
import math
import os

import matplotlib.pyplot as plt
import pyro
import pyro.distributions as dist
import torch

from retro.distributions import StringDistribution
from retro.humans import make_human
from retro.inference import AmortizedGuide, estimate, registrations, summarize
from retro.inference.calibration import standardized_errors
from retro.inference.train import TrainConfig, train
from retro.models import Imitator
from retro.nets import GRUDecoder, StringEncoder

SMOKE = os.environ.get("RETRO_SMOKE") == "1"
NUM_TRAIN = 300 if SMOKE else 3000
NUM_HELDOUT = 20 if SMOKE else 200
STEPS = 30 if SMOKE else 1500
HIDDEN = 32 if SMOKE else 64
PARTICLES = (10, 100) if SMOKE else (10, 100, 1000)  # K, for the estimators

# %% [markdown]
# ## 1. Data from a synthetic human
#
# The built-in `"arithmetic"` human answers sums and differences in one of three styles (terse `19`, verbose
# `12+7=19`, or sloppy: terse with many typos). It is itself a Pyro program, so its own log p of an answer is
# exactly computable: a ceiling that no imitator can beat on average.

# %%
torch.manual_seed(0)
human = make_human("arithmetic")
questions, answers = human.draw(NUM_TRAIN, seed=0)
heldout_questions, heldout_answers = human.draw(NUM_HELDOUT, seed=1)
for q, a in zip(questions[:8], answers[:8]):
    print(f"{q:>6}  ->  {a}")

# %% [markdown]
# ## 2. A custom imitator
#
# Subclass `Imitator` and write `model(questions, answers=None)`: encode the question, draw the per-answer
# latents inside `self.answers_plate(questions)`, and end with `self.observe(...)` of a distribution over
# strings. Our imitator has one latent, `care ~ Normal(0, 1)` per answer, fed to a GRU decoder next to the
# question code. The estimators wrap the model in a particle plate, so `care` can have shape `[K, B]`:
# broadcast, do not assume `[B]`.


# %%
class CarefulImitator(Imitator):
    """Question encoder + GRU decoder, conditioned on a per-answer scalar latent "care"."""

    name = "careful"

    def __init__(self, codec=None, max_length=32, hidden_dim=64):
        super().__init__(codec, max_length)
        self.remember_config(hidden_dim=hidden_dim)
        self.encoder = StringEncoder(self.codec.vocab_size, hidden_dim // 2)
        self.decoder = GRUDecoder(self.codec.vocab_size, self.encoder.output_dim + 1, hidden_dim)

    def model(self, questions, answers=None):
        code = self.encoder(questions)  # [B, H]
        with self.answers_plate(questions):
            care = pyro.sample("care", dist.Normal(0.0, 1.0))  # [..., B]
            shape = torch.broadcast_shapes(care.shape, code.shape[:-1])
            context = torch.cat([code.expand(shape + code.shape[-1:]), care.expand(shape)[..., None]], -1)
            answer = StringDistribution(self.decoder, context, self.max_length, self.codec.eos)
            return self.observe(answer, answers)


imitator = CarefulImitator(hidden_dim=HIDDEN)
print("untrained samples:", imitator.sample(["3+4"], num_samples=3)[0])

# %% [markdown]
# ## 3. Training
#
# `train` maximizes the ELBO with an amortized guide q(care | question, answer) (built automatically from the
# model's latent sites), evaluates held-out log p every `eval_every` steps, and keeps the best parameters.

# %%
guide = AmortizedGuide(imitator, hidden_dim=HIDDEN)
config = TrainConfig(
    steps=STEPS,
    batch_size=64,
    learning_rate=3e-3,
    eval_every=10 if SMOKE else 250,
    eval_particles=16 if SMOKE else 64,
    eval_answers=NUM_HELDOUT,
    seed=0,
    progress=not SMOKE,
)
report = train(
    imitator, questions, answers, guide=guide, heldout=(heldout_questions, heldout_answers), config=config
)
print(
    f"{report.steps} steps in {report.seconds:.0f} s; best held-out log p {report.best_heldout:.3f} "
    f"at step {report.best_step}"
)
print(f"{'step':>6} {'seconds':>8} {'loss':>8} {'held-out log p':>15}")
for row in report.history:
    print(f"{row['step']:>6} {row['seconds']:>8.1f} {row['loss']:>8.3f} {row['heldout_log_prob']:>15.3f}")

# %% [markdown]
# ## 4. Scoring held-out human answers
#
# Every estimator returns one `AnswerEstimate` per answer (`log_prob`, `stderr`, `ess`, `khat`, ...):
#
# * `exact`: with one scalar Normal latent, log p is an integral in one dimension, computed by quadrature;
# * `elbo`: a lower bound, E_q[log p(answer, care) - log q(care)];
# * `importance`: log of the mean importance weight, with the trained guide, the prior, or a defensive mixture
#   of both as the proposal. Its Pareto k-hat says whether the weights are trustworthy (below ~0.7).
#
# The human's own exact log p is the ceiling. Scoring runs in float64, so that quadrature is exact to far below any
# Monte Carlo error.

# %%
torch.set_default_dtype(torch.float64)
imitator.double()
guide.double()
torch.manual_seed(1)
reference = estimate("exact", imitator, heldout_questions, heldout_answers).records  # exact log p, per answer
ceiling = estimate("exact", human, heldout_questions, heldout_answers).records  # the human's own


def run(method, k):
    """Per-answer records of a registered estimator with K particles."""
    return estimate(
        method, imitator, heldout_questions, heldout_answers, guide=guide, num_particles=k
    ).records


# every registered estimator that counts particles (elbo, importance), with each of its proposals
METHODS = tuple(v for r in registrations() if r.budget == "particles" for v in r.variants())
runs = {method: {k: run(method, k) for k in PARTICLES} for method in METHODS}  # method -> K -> records
K = PARTICLES[-1]


def errors(records):
    """Per answer: estimate - exact."""
    return [r.log_prob - e.log_prob for r, e in zip(records, reference)]


print(f"{NUM_HELDOUT} held-out human answers, K = {K} particles")
print(f"{'method':<20} {'mean log p':>10} {'stderr':>8} {'mean |err|':>11} {'mean k-hat':>11}")
for name, records in {"exact": reference, **{m: runs[m][K] for m in METHODS}}.items():
    s = summarize(records)
    mean_abs = sum(abs(d) for d in errors(records)) / len(records)
    print(f"{name:<20} {s.log_prob_mean:>10.3f} {s.stderr:>8.3f} {mean_abs:>11.4f} {s.khat_mean:>11.3f}")
s = summarize(ceiling)
print(f"{'human (ceiling)':<20} {s.log_prob_mean:>10.3f} {s.stderr:>8.3f}")
gap = summarize(reference).log_prob_mean - summarize(runs["elbo"][K]).log_prob_mean
prior_ess = sum(r.ess for r in runs["importance[prior]"][K]) / NUM_HELDOUT / K
print(f"\nexact - ELBO = {gap:.4f} nats per answer (the mean KL from the guide to the posterior of care)")
print(f"prior proposal: mean ESS = {prior_ess:.1%} of K (near 100%: the answer says little about care)")

# %% [markdown]
# The claim, checked: every consistent estimate (kind `"estimate"`: importance sampling with each proposal, and
# `marginal`, which is the same here since a byte string has one tokenization) lies within 4 of its own Monte Carlo
# standard errors of the exact log p, answer by answer, and so does the mean over answers; the ELBO (kind `"lower_bound"`) sits below the exact mean, or above it by at most 4 standard errors of
# its mean (chance). A standard error that claims no doubt (0) must then be exactly right.

# %%
exact_values = [e.log_prob for e in reference]
for method in METHODS:
    records = runs[method][K]
    mean_error, mean_stderr = sum(errors(records)) / NUM_HELDOUT, summarize(records).mc_stderr
    line = f"{method:<20} mean error {mean_error:+.4f} = {mean_error / mean_stderr:+.2f} standard errors"
    if records[0].kind == "estimate":
        z = standardized_errors(records, exact_values)
        print(f"{line}; largest |z| over answers {abs(z).max():.2f}")
        assert (abs(z) <= 4).all(), (method, z)
        assert abs(mean_error) <= 4 * mean_stderr, (method, mean_error, mean_stderr)
    else:
        print(line)
        assert records[0].kind == "lower_bound", method
        assert mean_error <= 4 * mean_stderr, (method, mean_error, mean_stderr)

# %% [markdown]
# `stderr` is the standard error of the mean over answers (mostly the spread between answers, so it is about
# the same for every method); `mean |err|` is what the estimator itself adds, against the exact value. The gap
# between the imitator and the human is what training has yet to learn. How hard estimation is depends on
# how much the imitator relies on `care`: when an answer pins `care` down, its posterior is far from the
# prior, the prior proposal wastes most particles (low ESS, high k-hat) and a trained guide pays off. When the
# posterior stays close to the prior (a common outcome, "posterior collapse"), every proposal works.
#
# ## 5. How far is each estimate from the exact value?
#
# Left: per answer, estimate minus exact at the largest K, with each answer's Monte Carlo standard error.
# Right: the mean of (estimate - exact) over answers as K grows, with its standard error. The ELBO stays below
# zero on average (it is a bound); importance sampling is biased low for small K and converges to the exact
# value, faster with a better proposal.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
for offset, method in enumerate(METHODS):
    records = runs[method][K]
    left.errorbar(
        [i + 0.15 * offset for i in range(NUM_HELDOUT)],
        errors(records),
        yerr=[r.stderr for r in records],
        fmt="o",
        markersize=3,
        capsize=2,
        label=method,
    )
    means, stderrs = [], []
    for k in PARTICLES:
        diffs = errors(runs[method][k])
        mean = sum(diffs) / len(diffs)
        means.append(mean)
        stderrs.append(math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs)))
    right.errorbar(PARTICLES, means, yerr=stderrs, marker="o", capsize=3, label=method)
left.set(xlabel="held-out answer", ylabel="estimate - exact (nats)", title=f"per answer, K = {K}")
right.set(
    xscale="log", xlabel="particles K", ylabel="mean (estimate - exact) (nats)", title="mean error vs K"
)
for ax in (left, right):
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Samples from the trained imitator beside the human
#
# `imitator.sample(questions, num_samples)` runs the program forward: a fresh `care` per sample, then an
# answer.

# %%
torch.manual_seed(3)
shown = heldout_questions[:8]
samples = imitator.sample(shown, num_samples=3)
print(f"{'question':>8}  {'human':<12} imitator samples")
for q, a, s in zip(shown, heldout_answers, samples):
    print(f"{q:>8}  {a:<12} {s}")
