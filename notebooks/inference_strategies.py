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
# # Comparing inference strategies
#
# Retrodiction scores an imitator by log p(answer | question), one number per human answer. With latent variables
# that number is an integral, and retro *estimates* it. Which estimator should you use, at what budget? This
# notebook measures it on programs whose exact log p is known (a continuous latent of dimension one, integrated by
# quadrature), so every estimate's error is known too:
#
# * **ELBO** with K guide particles: E_q[log p(answer, z) - log q(z)], a lower bound. More particles shrink its
#   variance, not its bias (the KL from the guide to the posterior).
# * **Importance sampling** (IS) with K particles and a proposal: the trained guide, the prior, or a defensive
#   mixture of both. The estimate log((1/K) sum_k w_k) is consistent; its expectation is the IWAE bound
#   (Burda et al. 2016), which is below log p and climbs to it as K grows (K = 1 is the ELBO).
# * **Annealed importance sampling** (AIS) with T annealing steps (HMC transitions from the proposal towards the
#   posterior) and 64 chains: also unbiased in the weights, so the log estimate is biased low by Jensen's
#   inequality, and the bias shrinks as the chains approach the posterior.
#
# Sections: (a) bias and variance vs compute on the `typist` human; (b) Pareto k-hat diagnostics, and export to
# ArviZ; (c) the same comparison on a trained imitator; (d) bounding log p from both sides on simulated data (BDMC).
#
# Set `RETRO_SMOKE=1` to run everything in seconds with tiny sizes (that is what the tests do).

# %%
import dataclasses
import math
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch

from retro.humans import make_human
from retro.inference import AmortizedGuide, bdmc, estimate, khat_threshold, registrations, summarize
from retro.inference.ais import DEFAULT_NUM_CHAINS
from retro.inference.calibration import standardized_errors
from retro.inference.compare import compare
from retro.inference.psis import to_inference_data
from retro.inference.train import TrainConfig, train
from retro.models import LatentSeq2Seq

with warnings.catch_warnings():  # ArviZ 0.23 warns about its 1.x migration on import
    warnings.simplefilter("ignore")
    import arviz as az

SMOKE = os.environ.get("RETRO_SMOKE") == "1"
NUM_ANSWERS = 20 if SMOKE else 100  # answers scored per comparison
PARTICLES = (10, 100) if SMOKE else (10, 100, 1000)  # K for ELBO and IS
AIS_STEPS = (2, 8) if SMOKE else (4, 16, 48)  # T for AIS (64 chains each)
GUIDE_STEPS = 30 if SMOKE else 1000  # typist guide training
IMITATOR_TRAIN = 300 if SMOKE else 3000  # answers the imitator is trained on
IMITATOR_STEPS = 30 if SMOKE else 2000
IMITATOR_HIDDEN = 16 if SMOKE else 64
BDMC_ANSWERS = 5 if SMOKE else 30
BDMC_STEPS, BDMC_CHAINS = (4, 32) if SMOKE else (48, 256)

torch.set_num_threads(1)  # small networks; OpenMP threads on a shared machine can be many times slower
# Everything runs in float64 so that the quadrature ("exact") is exact to far below any Monte Carlo error.
torch.set_default_dtype(torch.float64)
torch.manual_seed(0)

# %% [markdown]
# ## Helpers
#
# `retro.inference.compare.compare` runs every method at every budget on the same answers, times it, and returns
# one row per (method, budget) with the mean estimate, its Monte Carlo standard error, the bias (mean of
# estimate - exact) and the mean |estimate - exact|, plus the per-answer records. A budget is K particles for
# ELBO and IS; for AIS (whose budget is its number of chains) we vary the steps T at the default 64 chains, one
# call per T, and label its rows by T. `compare` warms each method up first, which keeps one-time costs (lazy
# imports, first allocations) out of the timings.

# %%
# every registered estimator that samples: those counting particles, and AIS (counting chains)
PARTICLE_METHODS = tuple(v for r in registrations() if r.budget == "particles" for v in r.variants())
AIS_METHODS = tuple(v for r in registrations() if r.budget == "chains" for v in r.variants())
METHODS = PARTICLE_METHODS + AIS_METHODS
COLORS = {method: f"C{i}" for i, method in enumerate(METHODS)}


def run_comparison(program, guide, questions, answers):
    """Rows, per-answer records {(method, budget): records} and exact records, for every method and budget."""
    result = compare(program, questions, answers, PARTICLE_METHODS, PARTICLES, guide=guide, seed=0)
    rows, estimates = list(result.rows), dict(result.estimates)
    for steps in AIS_STEPS:  # AIS at its default number of chains, one run per number of steps T
        ais = compare(
            program,
            questions,
            answers,
            AIS_METHODS,
            [DEFAULT_NUM_CHAINS],
            guide=guide,
            seed=0,
            reference=result,
            options={"ais": {"num_steps": steps}},
        )
        rows += [dataclasses.replace(row, budget=steps) for row in ais.rows]
        estimates.update({(method, steps): records for (method, _), records in ais.estimates.items()})
    return rows, estimates, result.exact


def budget_label(method, budget):
    return f"T={budget}" if method.startswith("ais") else f"K={budget}"


def print_rows(rows):
    """Bias (with the standard error of the mean estimate), mean |error| and time, per (method, budget)."""
    print(
        f"{'method':<20} {'budget':>7} {'bias':>9} {'± se':>7} {'mean |err|':>10} {'k-hat':>6} {'ms/answer':>10}"
    )
    for r in rows:
        khat = f"{r.khat_mean:6.2f}" if r.khat_mean is not None and not math.isnan(r.khat_mean) else "     -"
        print(
            f"{r.method:<20} {budget_label(r.method, r.budget):>7} {r.bias:>+9.4f} {r.stderr:>7.4f} "
            f"{r.mean_abs_error:>10.4f} {khat} {1e3 * r.seconds_per_answer:>10.3f}"
        )


def best_per_time_budget(rows, limits=(1e-3, 1e-2, 1e-1, math.inf)):
    """For each time limit per answer, the (method, budget) with the smallest mean |error| among those that fit."""
    for limit in limits:
        fitting = [r for r in rows if r.seconds_per_answer < limit]
        label = "no limit" if math.isinf(limit) else f"< {1e3 * limit:g} ms/answer"
        if not fitting:
            print(f"{label:>16}: nothing this fast")
            continue
        best = min(fitting, key=lambda r: r.mean_abs_error)
        print(
            f"{label:>16}: {best.method} {budget_label(best.method, best.budget)} "
            f"(mean |err| {best.mean_abs_error:.4f} ± {best.stderr:.4f})"
        )


BOUNDED = ("[prior]", "[mixture]")  # proposals whose weights are bounded (see section (a))


def check_errors(rows, estimates, reference):
    """Assert what the text claims of every comparison (see section (a)); print the numbers checked."""
    exact_values = [e.log_prob for e in reference]
    for method in METHODS:
        mine = sorted((r for r in rows if r.method == method), key=lambda r: r.budget)
        first, last = mine[0], mine[-1]
        records = estimates[(method, last.budget)]
        budget = budget_label(method, last.budget)
        line = f"{method:<20} {budget:>7}: bias {last.bias:+.4f} ± {last.stderr:.4f}"
        if records[0].kind == "lower_bound":  # the ELBO: below exact, whatever K
            change = last.bias - first.bias
            print(f"{line}, {change:+.4f} from {budget_label(method, first.budget)}")
            assert all(r.bias <= 4 * r.stderr for r in mine), mine
            assert abs(change) <= 4 * math.hypot(first.stderr, last.stderr), mine
            continue
        z = np.abs(standardized_errors(records, exact_values))
        bounded = method.endswith(BOUNDED)
        print(f"{line}; largest |z| {z.max():.2f}{'' if bounded else ' (unbounded weights: not checked)'}")
        assert abs(last.bias) <= 4 * last.stderr, last
        assert not bounded or (z <= 4).all(), (method, z)


def plot_error_vs_time(rows, title):
    """Left: mean |error| (log) vs seconds per answer. Right: bias ± 2 standard errors vs seconds per answer."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    for method in METHODS:
        mine = sorted((r for r in rows if r.method == method), key=lambda r: r.budget)
        if not mine:
            continue
        seconds = [r.seconds_per_answer for r in mine]
        left.plot(seconds, [r.mean_abs_error for r in mine], "o-", color=COLORS[method], label=method)
        for r in mine:
            left.annotate(
                budget_label(method, r.budget),
                (r.seconds_per_answer, r.mean_abs_error),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        right.errorbar(
            seconds,
            [r.bias for r in mine],
            yerr=[2 * r.stderr for r in mine],
            marker="o",
            capsize=3,
            color=COLORS[method],
            label=method,
        )
    left.set(xscale="log", yscale="log", xlabel="seconds per answer", ylabel="mean |estimate - exact| (nats)")
    right.set(xscale="log", xlabel="seconds per answer", ylabel="mean (estimate - exact) (nats), ± 2 se")
    right.axhline(0.0, color="black", linewidth=0.8)
    left.set_title(f"{title}: error vs compute")
    right.set_title(f"{title}: bias vs compute")
    left.legend(fontsize=8)
    fig.tight_layout()
    plt.show()


def plot_per_answer(estimates, reference, title, shown=25):
    """Estimate - exact per answer at each method's largest budget, with each answer's standard error."""
    fig, ax = plt.subplots(figsize=(13, 4))
    largest = {}
    for method, budget in estimates:
        largest[method] = max(budget, largest.get(method, 0))
    n = min(shown, len(reference))
    for offset, method in enumerate(m for m in METHODS if m in largest):
        records = estimates[(method, largest[method])][:n]
        ax.errorbar(
            np.arange(n) + 0.12 * (offset - 2.5),
            [r.log_prob - e.log_prob for r, e in zip(records, reference)],
            yerr=[r.stderr for r in records],
            fmt="o",
            markersize=3,
            capsize=2,
            color=COLORS[method],
            label=f"{method} {budget_label(method, largest[method])}",
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set(xlabel="answer", ylabel="estimate - exact (nats)", title=f"{title}: per answer, largest budgets")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    plt.show()


# %% [markdown]
# ## (a) The typist: bias and variance vs compute
#
# The built-in `typist` human retypes English words with typos; each answer has its own sloppiness
# z ~ Normal(0, 1), and typo rate sigmoid(-3 + 1.5 z). It is a Pyro program like any imitator, so the estimators
# apply to it directly, and its exact log p comes by quadrature. We train an amortized guide
# q(z | question, answer) briefly on answers drawn from it (with another seed than the answers we score).

# %%
torch.manual_seed(0)
typist = make_human("typist")
train_questions, train_answers = typist.draw(200 if SMOKE else 2000, seed=1)
typist_guide = AmortizedGuide(typist, hidden_dim=32, example=(train_questions[:1], train_answers[:1]))
report = train(
    typist,
    train_questions,
    train_answers,
    guide=typist_guide,
    config=TrainConfig(
        steps=GUIDE_STEPS, batch_size=32, learning_rate=3e-3, eval_every=10**9, seed=0, progress=not SMOKE
    ),
)
print(f"guide trained for {report.steps} steps in {report.seconds:.1f} s")

questions, answers = typist.draw(NUM_ANSWERS, seed=0)
typist_rows, typist_estimates, typist_exact = run_comparison(typist, typist_guide, questions, answers)
print(f"{NUM_ANSWERS} answers; exact mean log p = {summarize(typist_exact).log_prob_mean:.4f}\n")
print_rows(typist_rows)
print("\nsmallest mean |error| within a time budget:")
best_per_time_budget(typist_rows)

# %% [markdown]
# `bias` is the mean of (estimate - exact) over answers, and `± se` the Monte Carlo standard error of that mean
# (sqrt of the summed per-answer squared standard errors, over N). A bias many standard errors from zero is
# systematic: the ELBO's stays put however many particles it gets (it is the guide's mean KL to the posterior),
# while IS's and AIS's are of the order of their noise once K or T is moderate. `mean |err|` adds up both: per
# answer, a biased or a noisy estimate is equally wrong. Times are wall-clock on this machine, per answer, for
# the whole batch of answers at once.
#
# `check_errors` asserts this, here and in (c), in units of those standard errors: the ELBO's bias is never above
# 0 by more than 4 of them and does not change from the smallest K to the largest by more than 4 (combined);
# each consistent estimator's bias at its largest budget is within 4 of them of 0. Answer by answer, where the
# weights are bounded, each error is within 4 of the answer's own standard errors (|z| <= 4): the prior as
# proposal (a weight is p(answer | z) <= 1), the mixture (at most twice that) and AIS started from the prior (a
# product of powers of p(answer | z)). With the guide as proposal the weights are unbounded and a standard error
# can be far too small even where k-hat shows nothing wrong (see (b)); there |z| is only printed.

# %%
check_errors(typist_rows, typist_estimates, typist_exact)

# %%
plot_error_vs_time(typist_rows, "typist")
plot_per_answer(typist_estimates, typist_exact, "typist")

# %% [markdown]
# Reading the plots: on the left, lower and further left is better, so the lower envelope of all curves is what
# you can get for a given time. IS with the prior is the cheapest per particle (no guide network to run) and does
# well here because one answer says little about the sloppiness (the posterior stays close to the prior). The
# guide pays off per particle when it is good, but a guide that is narrower than the posterior in a tail gives
# occasional huge weights: the defensive mixture keeps half of the particles on the prior to bound them. AIS costs
# T model evaluations (with gradients) per chain, so it lives further right; its error falls steadily with T.

# %% [markdown]
# ## (b) k-hat: can an estimate tell you that it is wrong?
#
# Each IS estimate carries the Pareto k-hat of its weights (PSIS, Vehtari et al. 2024): the estimated shape of the
# weights' upper tail. Above `khat_threshold(K)` = min(1 - 1/log10 K, 0.7) a few weights dominate, and the estimate
# (and its standard error) cannot be trusted; below it the weights show no sign of trouble, which is not a
# guarantee (see the end of this section). Here, at the largest K, per
# answer: k-hat vs the absolute error we know from the exact value.

# %%
K = PARTICLES[-1]
fig, ax = plt.subplots(figsize=(7, 4.5))
for method in ("importance[prior]", "importance[guide]"):
    records = typist_estimates[(method, K)]
    khats = np.array([r.khat for r in records])
    errs = np.array([abs(r.log_prob - e.log_prob) for r, e in zip(records, typist_exact)])
    ax.scatter(khats, errs, s=14, color=COLORS[method], label=method)
    over = khats > khat_threshold(K)
    print(
        f"{method:<18} K={K}: {over.sum()} of {len(records)} answers above the threshold; mean |err| "
        f"{errs[over].mean() if over.any() else float('nan'):.4f} there, "
        f"{errs[~over].mean() if (~over).any() else float('nan'):.4f} elsewhere"
    )
ax.axvline(khat_threshold(K), color="black", linestyle="--", label=f"khat_threshold({K})")
ax.set(yscale="log", xlabel="Pareto k-hat", ylabel="|estimate - exact| (nats)", title=f"typist, K = {K}")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### The same diagnostics in ArviZ
#
# `importance` also returns the log weights `[K, answers]` (in `info.log_weights`); `to_inference_data` turns them into an
# ArviZ `InferenceData` (particles as the draws of one chain, per answer), so ArviZ's own tools apply: `az.psislw`
# recomputes the k-hats (they match the ones in the records), and `az.plot_khat` plots them (with the
# threshold for K draws added).

# %%
torch.manual_seed(0)
weighted = estimate(
    "importance[guide]", typist, questions, answers, guide=typist_guide, num_particles=K, seed=0
)
idata = to_inference_data(weighted.info.log_weights, weighted.records)
print(idata.sample_stats)
log_weights = idata.sample_stats.log_weights.stack(__sample__=("chain", "draw"))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # ArviZ warns when some k-hat is above 0.7
    _, khat = az.psislw(log_weights)
ours = np.array([r.khat for r in weighted.records])
print(f"largest |ArviZ k-hat - record k-hat|: {np.nanmax(np.abs(khat.values - ours)):.2e}")
assert np.allclose(khat.values, ours, rtol=0, atol=1e-9, equal_nan=True)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # ArviZ 0.23 asks for ELPDData rather than an array
    ax = az.plot_khat(khat.values, figsize=(8, 3.5))
ax.axhline(khat_threshold(K), color="black", linestyle="--", label=f"khat_threshold({K})")
ax.legend(fontsize=8)
ax.set_title(f"importance[guide], K = {K}: k-hat per answer (ArviZ)")
plt.show()

# %% [markdown]
# k-hat is itself an estimate, from the largest ~3 sqrt(K) weights. It flags the answers where a narrow guide
# meets a wider posterior, but it can also be far too pessimistic: with a briefly trained guide, some answers get
# k-hat > 1 at K = 1000 while their ESS is ~98% of K and their error tiny. In the one such answer we checked, the
# k-hat fell to ~0.4 at K = 10^4 and ~0.3 at K = 10^5, close to the true tail shape 1 - s^2 of a Normal guide with
# standard deviation s = 0.82 under a Normal(0, 1) prior: a pile-up of weights at a local maximum of p/q, followed
# by a few larger ones from the genuine (but light) tail, looks heavy-tailed to a fit on 95 points.
#
# It can be too optimistic as well. In the smoke-size run (guide trained for 30 steps, K = 100), the typist's answer
# "course" got k-hat 0.38, below the threshold 0.5, and an ESS of 58 of 100, yet its guide estimate was 0.42 nats
# low, 4.8 of its own standard errors: most likely the guide put almost no mass where part of the posterior lies, so no draw
# came from there, and weights that were never drawn cannot show in a tail fit. Read k-hat together with the ESS,
# and trust the mixture, whose weights are bounded, where they disagree.

# %% [markdown]
# ## (c) A trained imitator
#
# Now the program being scored is an imitator we train: `LatentSeq2Seq` (a GRU seq2seq conditioned on a
# per-answer latent z ~ Normal(0, 1)) with `latent_dim=1`, so its exact log p is still a one-dimensional integral.
# It is trained with an amortized guide on answers from the `arithmetic` human (three answer styles: terse,
# verbose, sloppy), then scored on held-out answers of that human with every estimator.

# %%
torch.manual_seed(0)
arithmetic = make_human("arithmetic")
imitator_questions, imitator_answers = arithmetic.draw(IMITATOR_TRAIN, seed=0)
heldout_questions, heldout_answers = arithmetic.draw(NUM_ANSWERS, seed=1)
imitator = LatentSeq2Seq(latent_dim=1, hidden_dim=IMITATOR_HIDDEN, max_length=16)
imitator_guide = AmortizedGuide(imitator, hidden_dim=32)
report = train(
    imitator,
    imitator_questions,
    imitator_answers,
    guide=imitator_guide,
    heldout=(heldout_questions, heldout_answers),
    config=TrainConfig(
        steps=IMITATOR_STEPS,
        eval_every=10 if SMOKE else 250,
        eval_particles=16 if SMOKE else 64,
        seed=0,
        progress=not SMOKE,
    ),
)
print(
    f"trained {report.steps} steps in {report.seconds:.0f} s; best held-out log p {report.best_heldout:.3f}"
)

imitator_rows, imitator_estimates, imitator_exact = run_comparison(
    imitator, imitator_guide, heldout_questions, heldout_answers
)
ceiling = summarize(estimate("exact", arithmetic, heldout_questions, heldout_answers)).log_prob_mean
print(
    f"{NUM_ANSWERS} held-out answers; exact mean log p: imitator {summarize(imitator_exact).log_prob_mean:.4f}, "
    f"the human itself {ceiling:.4f}\n"
)
print_rows(imitator_rows)
print("\nsmallest mean |error| within a time budget:")
best_per_time_budget(imitator_rows)
elbo_gap = -max((r for r in imitator_rows if r.method == "elbo"), key=lambda r: r.budget).bias
print(f"\nexact - ELBO = {elbo_gap:.4f} nats per answer: the guide's mean KL to the posterior of z\n")
check_errors(imitator_rows, imitator_estimates, imitator_exact)

# %%
plot_error_vs_time(imitator_rows, "trained imitator")
plot_per_answer(imitator_estimates, imitator_exact, "trained imitator")

# %% [markdown]
# How hard estimation is depends on how much the imitator relies on z. A small exact - ELBO gap with a good
# prior proposal (low k-hat) means the posterior of z stays close to its prior for most answers ("posterior
# collapse", common for a VAE-like model with a strong autoregressive decoder): every estimator is then accurate,
# and the cheapest one (IS with the prior, few particles) is the one to use. Estimation gets hard, and the guide,
# the mixture and AIS earn their cost, when answers pin z down.

# %% [markdown]
# ## (d) BDMC sandwich
#
# Everything above needs exact values, which exist only for tiny latent spaces. Bidirectional Monte Carlo (Grosse
# et al. 2015) bounds log p from both sides without them, on answers *simulated from the program itself*: each
# forward AIS chain's log weight is below log p in expectation, and each reverse AIS chain, started from the exact
# posterior sample that the simulation provides, gives minus a log weight that is above it in expectation. retro
# turns those means over chains into one-sided confidence bounds (by default both hold together with probability
# 0.95), so the exact value should fall inside about 95% of the sandwiches or more (the cell asserts it, less 4
# binomial standard errors); the gap between them bounds the error of AIS at this budget. The dots are the AIS
# estimates themselves. The bounds use the normal quantile, so they need enough chains for the central limit
# theorem: with 4 chains (4 steps) only 34 of 40 typist answers were inside, every miss a lower bound above the
# exact value; with 32 chains, 40 of 40.

# %%
programs = (("typist", typist, questions), ("trained imitator", imitator, heldout_questions))
fig, axes = plt.subplots(1, len(programs), figsize=(13, 4))
for ax, (name, program, program_questions) in zip(axes, programs):
    sandwiches = bdmc(
        program,
        list(program_questions[:BDMC_ANSWERS]),
        num_steps=BDMC_STEPS,
        num_chains=BDMC_CHAINS,
        seed=0,
    )
    known = all(s.exact is not None for s in sandwiches)
    center = np.array([s.exact if known else 0.0 for s in sandwiches])
    index = np.arange(len(sandwiches))
    lower = np.array([s.log_prob_lower for s in sandwiches]) - center
    upper = np.array([s.log_prob_upper for s in sandwiches]) - center
    estimate = np.array([s.ais_estimate for s in sandwiches]) - center
    ax.vlines(index, lower, upper, color="C7", linewidth=4, alpha=0.5, label="95% sandwich")
    ax.plot(index, estimate, "o", markersize=3, label="AIS estimate")
    gap = upper - lower
    if known:
        ax.axhline(0.0, color="black", linewidth=0.8, label="exact")
    ax.set(
        xlabel="simulated answer",
        ylabel="bound - exact (nats)" if known else "log p bound (nats)",
        title=f"{name}: T = {BDMC_STEPS}, {BDMC_CHAINS} chains, mean gap {gap.mean():.4f} nats",
    )
    ax.legend(fontsize=7)
    line = f"{name}: {len(sandwiches)} simulated answers, mean gap {gap.mean():.4f} nats"
    if known:
        inside = int(np.sum((lower <= 0) & (upper >= 0)))
        line += f"; exact inside {inside} of {len(sandwiches)} sandwiches"
    print(line)
    if known:  # at least 95% inside, less at most 4 binomial standard errors
        n = len(sandwiches)
        assert inside >= 0.95 * n - 4 * math.sqrt(0.95 * 0.05 * n), (name, inside, n)
fig.tight_layout()
plt.show()
