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
# # Why retrodiction matters: steganography and Sudoku
#
# Two experiments turn the central argument into numbers (the same runs as `retro experiment steganography` and
# `retro experiment sudoku`; a fixed seed reproduces them).
#
# * **Steganography.** An imitator can hide a message in its answers, choosing among equally likely human answers
#   with a secret key. Without the key its answers have exactly the human's distribution, so *no discriminator*
#   can tell; retrodiction, which scores the human's actual answers, sees the hidden channel as lost probability.
# * **Sudoku.** A human always answers with a valid solution. A *verifier* catches any imitator that does not
#   solve, whatever its style; retrodiction scores the one imitator that matches the human exactly at
#   `-log(number of solutions)`, which model counting computes.
#
# Set `RETRO_SMOKE=1` for a run in seconds (the tests do).

# %%
import inspect
import math
import os
import random

import matplotlib.pyplot as plt
import numpy as np
import torch

from retro.experiments.steganography import expected_drop, run_steganography
from retro.experiments.sudoku import ConstraintImitator, UniformFillImitator, run_sudoku
from retro.experiments.sudoku_grids import count_solutions, is_solution, make_puzzles
from retro.inference import exact

SMOKE = os.environ.get("RETRO_SMOKE") == "1"
torch.set_num_threads(1)  # small networks; OpenMP threads on a shared machine can be many times slower
STEGO = dict(num_train=200, num_test=100, disc_steps=20) if SMOKE else {}
SUDOKU = (
    dict(num_puzzles=16, num_puzzles_9x9=2, train_steps=20, disc_steps=20, report_samples=10) if SMOKE else {}
)

# %% [markdown]
# ## 1. Steganography
# For b = 0..4 hidden bits per answer (the human picks among 16 words per question): the held-out accuracy of a
# discriminator trained to tell the imitator from the human, the share of hidden messages read back with the key,
# and the drop of the mean log p of held-out human answers relative to the honest imitator, next to its expected
# value, the KL divergence from the human, and the b ln 2 line.

# %%
stego = run_steganography(seed=0, **STEGO)
bits = np.array([r.bits for r in stego])
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
accuracy = np.array([r.disc_accuracy for r in stego])
errors = np.array(
    [[r.disc_accuracy - r.disc_ci_low for r in stego], [r.disc_ci_high - r.disc_accuracy for r in stego]]
)
axes[0].errorbar(bits, accuracy, yerr=errors, fmt="o-", capsize=4, label="discriminator accuracy (95% CI)")
axes[0].plot(bits, [r.decode_accuracy for r in stego], "s-", label="decoding accuracy with the key")
axes[0].axhline(0.5, color="black", linewidth=0.8, linestyle="--")
axes[0].set(xlabel="hidden bits per answer", ylim=(0, 1.05), title="what a discriminator sees")
axes[0].legend(fontsize=8)
drops = np.array([r.log_prob_drop_nats for r in stego])
drop_se = np.array([r.log_prob_drop_stderr for r in stego])
axes[1].errorbar(bits, drops, yerr=2 * drop_se, fmt="o", capsize=4, label="measured drop (± 2 SE)")
axes[1].plot(bits, [r.expected_drop_nats for r in stego], "-", label="KL(human || imitator)")
axes[1].plot(bits, bits * math.log(2), "--", label="b ln 2")
axes[1].set(xlabel="hidden bits per answer", ylabel="nats per answer", title="what retrodiction sees")
axes[1].legend(fontsize=8)
plt.show()
for r in stego:
    print(
        f"b={r.bits}: discriminator {r.disc_accuracy:.3f}, decoding {r.decode_accuracy:.3f}, "
        f"log p drop {r.log_prob_drop_nats:.3f} ± {r.log_prob_drop_stderr:.3f} (expected {r.expected_drop_nats:.3f}); "
        f"without smoothing {r.unsmoothed_impossible_fraction:.0%} of human answers have probability 0"
    )

# %% [markdown]
# The claims, checked (each within 4 standard errors: binomial ones for the accuracies, the per-answer one for the
# drop): the discriminator is at chance, 0.5, whatever b; the key reads the message back as often as
# 1 - s + s / 2^b promises; and retrodiction sees every hidden bit: the drop is its expected value,
# KL(human || imitator), and more than 4 standard errors above 0 once b > 0.

# %%
defaults = inspect.signature(run_steganography).parameters  # the sizes STEGO does not set
num_train, num_test = (STEGO.get(name, defaults[name].default) for name in ("num_train", "num_test"))
for r in stego:
    assert abs(r.disc_accuracy - 0.5) <= 4 * math.sqrt(0.25 / (2 * num_test)), r  # 2 * num_test pairs tested
    reliability = 1 - r.smoothing + r.smoothing / 2**r.bits
    decode_stderr = math.sqrt(reliability * (1 - reliability) / (num_train + num_test))
    assert abs(r.decode_accuracy - reliability) <= 4 * decode_stderr + 1e-12, r
    assert abs(r.log_prob_drop_nats - r.expected_drop_nats) <= 4 * r.log_prob_drop_stderr + 1e-9, r
    assert r.bits == 0 or r.log_prob_drop_nats > 4 * r.log_prob_drop_stderr, r

# %% [markdown]
# The more reliable the channel (less smoothing), the larger the drop: the KL divergence grows without bound as
# the smoothing goes to 0 (then most human answers get probability 0).

# %%
smoothings = np.logspace(-3, -0.3, 30)
fig, ax = plt.subplots(figsize=(6, 4))
for b in (1, 2, 4):
    reliability = 1 - smoothings + smoothings / 2**b
    ax.plot(reliability, [expected_drop(b, s) for s in smoothings], label=f"b = {b}")
    ax.axhline(b * math.log(2), color="gray", linewidth=0.6, linestyle=":")
ax.set(xlabel="decoding accuracy", ylabel="expected log p drop (nats)", title="reliability costs probability")
ax.legend()
plt.show()

# %% [markdown]
# ## 2. Sudoku
# Three imitators answer 4x4 puzzles with several solutions: the constraint imitator (uniform over the solutions:
# the human's own law), one that fills blanks uniformly, and a neural imitator trained by retrodiction. The
# verifier discriminator says "human" exactly when an answer is a valid solution.

# %%
sudoku = run_sudoku(seed=0, **SUDOKU)
print(
    f"{'size':>4} {'imitator':<13} {'verifier acc.':>13} {'pass rate':>9} {'log p':>16} {'C2ST':>6} {'typ. p':>8}"
)
for r in sudoku["rows"]:
    c2st = "" if r["c2st_accuracy"] is None else f"{r['c2st_accuracy']:.3f}"
    typical = "" if r["typicality_p_value"] is None else f"{r['typicality_p_value']:.2g}"
    print(
        f"{r['size']:>4} {r['imitator']:<13} {r['verifier_disc_accuracy']:13.3f} {r['verifier_pass_rate']:9.3f} "
        f"{r['log_prob_mean']:8.3f} ± {r['log_prob_stderr']:.3f} {c2st:>6} {typical:>8}"
    )

# %% [markdown]
# The claims, checked. In the table, the constraint imitator passes the verifier every time and the verifier
# discriminator can only guess (accuracy exactly 0.5). On fresh 4x4 puzzles, draw by draw and exactly (float64):
# every answer of the constraint imitator passes the verifier and has log p = -log(number of solutions); every
# answer of the uniform fill has log p = -blanks log 4, and it passes the verifier only by chance, with
# probability count / 4^blanks per puzzle (under 1% here): its passes are at most 4 binomial standard errors above
# that expectation.

# %%
for r in sudoku["rows"]:
    if r["imitator"] == "constraint":
        assert r["verifier_pass_rate"] == 1.0 and r["verifier_disc_accuracy"] == 0.5, r
torch.set_default_dtype(torch.float64)
constraint, uniform = ConstraintImitator(4), UniformFillImitator(4)
DRAWS = 20 if SMOKE else 100  # answers per puzzle
checked = make_puzzles(4, 16 if SMOKE else 100, random.Random(1))
passes = expected_passes = passes_variance = 0.0
for puzzle in checked:
    count, blanks = count_solutions(puzzle), puzzle.count(".")
    solved = constraint.sample([puzzle], num_samples=DRAWS)[0]
    assert all(is_solution(puzzle, a) for a in solved), puzzle
    log_probs = np.array([r.log_prob for r in exact(constraint, [puzzle] * DRAWS, solved).records])
    assert np.abs(log_probs + math.log(count)).max() < 1e-9, puzzle
    filled = uniform.sample([puzzle], num_samples=DRAWS)[0]
    log_probs = np.array([r.log_prob for r in exact(uniform, [puzzle] * DRAWS, filled).records])
    assert np.abs(log_probs + blanks * math.log(4)).max() < 1e-9, puzzle
    passes += sum(is_solution(puzzle, a) for a in filled)
    chance = count / 4**blanks
    expected_passes += DRAWS * chance
    passes_variance += DRAWS * chance * (1 - chance)
total = DRAWS * len(checked)
print(
    f"constraint imitator: {total} of {total} answers pass, each at log p = -log(#solutions); uniform fill: "
    f"{passes:.0f} of {total} pass (expected {expected_passes:.3g})"
)
assert expected_passes / total < 0.01 and passes <= expected_passes + 4 * math.sqrt(passes_variance)

# %% [markdown]
# Model counting: ApproxMC's (ε = 0.8, δ = 0.2) count of each 9x9 puzzle's solutions gives bounds on the constraint
# imitator's log p that hold with probability at least 0.8 each; here they are checked against exact counts.

# %%
counting = sudoku["counting_rows"]
fig, ax = plt.subplots(figsize=(6, 4))
index = np.arange(len(counting))
exact = np.array([c["log_prob_exact"] for c in counting])
ax.vlines(
    index,
    [c["log_prob_lower"] for c in counting],
    [c["log_prob_upper"] for c in counting],
    linewidth=5,
    alpha=0.5,
    label="ApproxMC bounds",
)
ax.plot(index, exact, "k_", markersize=12, label="-log(exact count)")
ax.set(xlabel="9x9 puzzle", ylabel="constraint imitator log p (nats)", title="log p by model counting")
ax.legend()
plt.show()
inside = sum(c["within_bounds"] for c in counting)
print(f"exact log p inside ApproxMC's bounds for {inside} of {len(counting)} puzzles")
# each pair of bounds holds with probability at least 0.8: at most 4 binomial standard errors fewer hold
assert inside >= 0.8 * len(counting) - 4 * math.sqrt(0.8 * 0.2 * len(counting))
