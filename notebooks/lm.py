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
# # A language model as an imitator
#
# A causal language model (any Hugging Face `AutoModelForCausalLM` in a local directory) is a distribution over
# answer strings given a prompt. retro makes it a Pyro program like its other imitators, so everything retro has
# works on it: this notebook loads one, scores human answers per answer, scores **strings** rather than one
# tokenization of them, adds a latent variable (which persona is answering), compares estimators, and fine-tunes
# the model by retrodiction.
#
# Set `RETRO_LM_BASE` to a model directory written by `save_pretrained` (safetensors weights; nothing is
# downloaded, and no code from the directory is run). Without it, and in smoke mode (`RETRO_SMOKE=1`, as the tests
# run it), the notebook builds a small GPT-2-style model with random weights and a byte-level BPE tokenizer trained
# on the data, and loads it through the same path. Needs the `[lm]` extra.

# %%
import math
import os
import tempfile

import torch

from retro.humans import make_human
from retro.inference import AmortizedGuide, estimate, summarize
from retro.inference.train import TrainConfig, train
from retro.lm import load_base
from retro.lm.random_base import make_random_base
from retro.models import LanguageModel, PersonaLM

SMOKE = os.environ.get("RETRO_SMOKE") == "1"
NUM_TRAIN, NUM_TEST = (48, 12) if SMOKE else (2000, 200)
STEPS = 30 if SMOKE else 600
K = 100 if SMOKE else 1000
torch.set_num_threads(1)  # OpenMP threads on a shared machine can be many times slower
torch.manual_seed(0)

# %% [markdown]
# ## Human answers, and a model
#
# The `arithmetic` human answers sums and differences tersely (`19`), verbosely (`12+7=19`) or sloppily (with
# typos), a hidden style per answer. We take its answers as the human data.

# %%
human = make_human("arithmetic")
questions, answers = human.draw(NUM_TRAIN, seed=0)
test_questions, test_answers = human.draw(NUM_TEST, seed=1)
TEMPLATE = "Q: {question}\nA: "  # the trailing space belongs to the answer: " 19" is what the model scores
print(list(zip(test_questions[:4], test_answers[:4])))

# %%
BASE = os.environ.get("RETRO_LM_BASE")
if BASE is None or SMOKE:
    BASE = os.path.join(tempfile.mkdtemp(), "base")
    made = make_random_base(
        BASE,
        [TEMPLATE.rstrip().replace("{question}", q) + " " + a for q, a in zip(questions, answers)],
        vocab_size=300,
        layers=2,
        width=32 if SMOKE else 128,
        heads=2,
    )
    print(made)
base = load_base(BASE)  # local files, safetensors only, trust_remote_code off; base.sha256 names the weights
imitator = LanguageModel(base, template=TEMPLATE, max_length=12)
print(imitator.sample(test_questions[:3], num_samples=2))

# %% [markdown]
# ## Score human answers
#
# The `lm` imitator has no latent variable, so `exact` gives each answer's log p (of its canonical tokenization):
# one teacher-forced pass over all answers, the prompt's key/value cache computed once per question. Every
# estimator is called by name through the registry (`retro score --method NAME` does the same).

# %%
scores = estimate("exact", imitator, test_questions, test_answers).records
print(scores[0])
print(summarize(scores))

# %% [markdown]
# ## Strings, not token sequences
#
# A byte-level BPE spells `" 12+7=19"` in many ways (`" 12"` `"+"` ... or byte by byte); the model gives each a
# probability, and the string's probability is their sum. The canonical tokenization alone (what every LM scoring
# tool reports) is a lower bound. `exact-marginal` enumerates every tokenization (short strings); the importance
# sampler `marginal` draws tokenizations from the model restricted to the string (the canonical one is counted
# exactly), with a standard error. Records say which they score in `target`.

# %%
marginal = estimate("exact-marginal", imitator, test_questions, test_answers).records
sampled = estimate("marginal", imitator, test_questions, test_answers, num_particles=K, seed=0).records
gaps = [m.log_prob - c.log_prob for m, c in zip(marginal, scores)]
for c, m, s in list(zip(scores, marginal, sampled))[:5]:
    print(
        f"{c.answer!r:12} canonical {c.log_prob:8.3f}  marginal {m.log_prob:8.3f} ({m.num_particles} "
        f"tokenizations)  IS {s.log_prob:8.3f} ± {s.stderr:.3f}"
    )
print(f"mean gap marginal - canonical: {sum(gaps) / len(gaps):.3f} nats per answer")
assert all(m.log_prob >= c.log_prob - 1e-6 for m, c in zip(marginal, scores))
# the canonical term is exact, so the sampled estimate never falls below it (float32: 1e-4); it misses only what
# its draws miss
assert all(
    c.log_prob - 1e-4 <= s.log_prob <= m.log_prob + 4 * s.stderr + 1e-4
    for c, s, m in zip(scores, sampled, marginal)
)

# %% [markdown]
# A trained model puts nearly all of a string's mass on its canonical tokenization, so the gap shrinks with
# training; a random model spreads it (the README reports the gap for a model trained on CMUdict).
#
# ## A persona latent
#
# `PersonaLM` reads one of K persona texts before the prompt, a latent chosen with learned weights. Each persona's
# text is computed once and shared by every question and particle. Its log p is exact by enumeration; the sampling
# estimators are checked against it.

# %%
personas = ["Answer with the number only.\n", "Show the sum, then the result.\n", "Answer quickly.\n"]
persona_lm = PersonaLM(base, personas=personas, template=TEMPLATE, max_length=12, finetune="lora")
guide = AmortizedGuide(persona_lm, hidden_dim=16)
methods = {  # method name -> particles
    "exact": None,
    "importance[prior]": K,
    "elbo": K,
    "exact-marginal": None,
    "marginal[prior]": K,
}
rows = {
    name: estimate(
        name, persona_lm, test_questions, test_answers, guide=guide, num_particles=k, seed=0
    ).records
    for name, k in methods.items()
}
for name, records in rows.items():
    s = summarize(records)
    print(f"{name:18} {records[0].kind:12} {records[0].target:10} {s.log_prob_mean:9.3f} ± {s.stderr:.3f}")
for e, i in zip(rows["exact"], rows["importance[prior]"]):
    assert abs(i.log_prob - e.log_prob) <= 4 * i.stderr + 1e-6

# %% [markdown]
# ## Fine-tune by retrodiction
#
# LoRA adapters on the frozen base (and the persona weights) are trained to raise log p of the human answers, with
# the ELBO and the amortized guide. The base is untouched; a checkpoint would hold only the adapters and weights,
# with the base's hash.

# %%
before = summarize(estimate("exact", persona_lm, test_questions, test_answers)).log_prob_mean
report = train(
    persona_lm,
    questions,
    answers,
    guide=guide,
    config=TrainConfig(steps=STEPS, batch_size=16, learning_rate=1e-2, eval_every=10**9, progress=False),
)
after = summarize(estimate("exact", persona_lm, test_questions, test_answers)).log_prob_mean
weights = persona_lm.persona_logits.detach().softmax(-1).tolist()
print(
    f"held-out log p: {before:.3f} -> {after:.3f} nats per answer; persona weights {[round(w, 3) for w in weights]}"
)
assert math.isfinite(after) and after > before
