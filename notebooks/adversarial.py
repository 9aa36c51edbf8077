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
# # Retrodiction vs adversarial training, on the same program
#
# One imitator architecture (a GRU encoder-decoder, `seq2seq`) is trained three ways on answers of the built-in
# `arithmetic` human, whose own log p is exact:
#
# * **retrodiction**: maximum likelihood (the ELBO; exact here, no latents);
# * **adversarial**: the *same program* run forward as a sampler against a neural discriminator, with the
#   score-function gradient of its own trace (4 answers per question, leave-one-out baseline);
# * **mixed**: the retrodiction loss plus λ = 1 times the adversarial loss.
#
# Each is then judged by `retro.inference.report.imitator_report`: held-out log p, the typicality test, a
# classifier two-sample test (C2ST), and the pass rate of a verifier (is the sum right?). Finally, quality-diversity
# curves over sampling temperature (Caccia et al. 2020). Set `RETRO_SMOKE=1` for a run in seconds (the tests do).

# %%
import os
import time

import matplotlib.pyplot as plt
import torch

from retro.discriminators import NeuralDiscriminator
from retro.humans import make_human
from retro.inference import estimate
from retro.inference.adversarial import AdversarialObjective
from retro.inference.report import imitator_report
from retro.inference.temperature import temperature_curve
from retro.inference.train import TrainConfig, train
from retro.models import make_imitator
from retro.text import AlphabetCodec
from retro.verifiers import verifier_from_spec

SMOKE = os.environ.get("RETRO_SMOKE") == "1"
NUM_TRAIN, NUM_HELDOUT = (300, 40) if SMOKE else (4000, 400)
STEPS = 10 if SMOKE else 1500
HIDDEN = 16 if SMOKE else 64
REPORT = dict(num_samples=10, num_particles=1, discriminator_steps=20) if SMOKE else dict(num_particles=1)
TEMPERATURES = (0.5, 1.0) if SMOKE else (0.4, 0.6, 0.8, 1.0, 1.2, 1.5)
torch.set_num_threads(1)  # small networks; OpenMP threads on a shared machine can be many times slower

# %% [markdown]
# ## Data
# A fixed alphabet (digits, `+`, `-`, `=`) keeps the imitators' space small; the human's typos use the same keys,
# so every string over it has non-zero probability under the human.

# %%
codec = AlphabetCodec("0123456789+-=")
human = make_human("arithmetic", codec=codec, max_length=16)
questions, answers = human.draw(NUM_TRAIN, seed=1)
heldout_questions, heldout_answers = human.draw(NUM_HELDOUT, seed=2)
verifier = verifier_from_spec("arithmetic")
print(list(zip(questions[:6], answers[:6])))

# %% [markdown]
# ## Training, three ways


# %%
def fresh_imitator():
    torch.manual_seed(0)
    return make_imitator("seq2seq", codec=codec, max_length=16, hidden_dim=HIDDEN)


def fit(objective_name):
    imitator = fresh_imitator()
    objective = None
    if objective_name != "retrodiction":
        discriminator = NeuralDiscriminator(codec, 16, hidden_dim=HIDDEN)
        objective = AdversarialObjective(
            imitator, discriminator, retrodiction_weight=1.0 if objective_name == "mixed" else 0.0
        )
    config = TrainConfig(
        steps=STEPS,
        learning_rate=3e-3 if objective_name == "retrodiction" else 1e-3,
        eval_every=max(1, STEPS // 5),
        eval_particles=1,
        progress=False,
    )
    start = time.monotonic()
    report = train(
        imitator,
        questions,
        answers,
        heldout=(heldout_questions, heldout_answers),
        config=config,
        objective=objective,
    )
    print(f"{objective_name}: {report.steps} steps in {time.monotonic() - start:.0f} s")
    return imitator, report


imitators = {"untrained": (fresh_imitator(), None)}
for name in ("retrodiction", "adversarial", "mixed"):
    imitators[name] = fit(name)

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for name, (_, report) in imitators.items():
    if report is not None:
        ax.plot(
            [r["step"] for r in report.history],
            [r["heldout_log_prob"] for r in report.history],
            "o-",
            label=name,
        )
ax.set(xlabel="step", ylabel="held-out log p (nats per answer)", title="retrodiction score during training")
ax.legend()
plt.show()

# %% [markdown]
# ## Judging each imitator
# `accuracy` is the held-out accuracy of a fresh discriminator trained to tell the imitator's answers from the
# human's (0.5: it cannot); `typicality p` is Fisher's combined p-value of the typicality test (small: the human's
# answers are not typical for the imitator); `verifier` is the share of the imitator's answers with the right value
# (the human's share is printed once).

# %%
reports = {}
for name, (imitator, _) in imitators.items():
    reports[name] = imitator_report(imitator, heldout_questions, heldout_answers, verifier=verifier, **REPORT)
print(f"human's own verifier pass rate: {reports['untrained'].human_verifier_pass_rate:.3f}")
print(f"{'imitator':<13} {'log p':>16} {'C2ST accuracy':>22} {'typicality p':>13} {'verifier':>9}")
for name, r in reports.items():
    c2st = r.two_sample
    print(
        f"{name:<13} {r.log_prob_mean:8.3f} ± {r.log_prob_stderr:5.3f} "
        f"{c2st.accuracy:8.3f} [{c2st.ci_low:.3f}, {c2st.ci_high:.3f}] "
        f"{r.typicality.overall_p_value:13.3g} {r.verifier_pass_rate:9.3f}"
    )

# %% [markdown]
# The claim, checked: trained by retrodiction, the program gives the human's held-out answers a higher log p than
# the same program trained adversarially for as many steps. Both are scored exactly (no latents) on the same
# answers, so the standard error of the mean difference comes from the per-answer differences; the margin must
# exceed 3 of them.

# %%
exact_log_probs = {
    name: torch.tensor(
        [r.log_prob for r in estimate("exact", imitator, heldout_questions, heldout_answers).records],
        dtype=torch.float64,
    )
    for name, (imitator, _) in imitators.items()
}
differences = exact_log_probs["retrodiction"] - exact_log_probs["adversarial"]
margin, margin_stderr = differences.mean().item(), (differences.std() / len(differences) ** 0.5).item()
print(f"retrodiction - adversarial: {margin:.3f} ± {margin_stderr:.3f} nats per held-out answer")
assert margin > 3 * margin_stderr, (margin, margin_stderr)

# %% [markdown]
# ## Quality-diversity over temperature
# Quality: mean log p *under the human* of the imitator's answers at temperature T. Coverage: mean log p *under the
# tempered imitator* of the human's held-out answers. Points up and to the right are better on both.

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for name in ("retrodiction", "adversarial", "mixed"):
    points = temperature_curve(
        imitators[name][0], human, heldout_questions, heldout_answers, TEMPERATURES, num_samples=5
    )
    ax.plot([p.quality for p in points], [p.coverage for p in points], "o-", label=name)
    for p in points:
        ax.annotate(f"{p.temperature:g}", (p.quality, p.coverage), fontsize=7)
    print(
        name,
        [(p.temperature, round(p.quality, 3), round(p.coverage, 3), round(p.distinct, 3)) for p in points],
    )
ax.set(xlabel="quality: log p_human(imitator's answers)", ylabel="coverage: log p_imitator(human answers)")
ax.legend()
plt.show()
