"""The Imitator contract for the language-model imitators (mirrors ``tests/models/test_contract.py``).

The tiny base here has a BPE over {a, b} (6 tokens with EOS), so every token sequence up to the maximum length
can be enumerated. A language model's distribution is over token sequences: a string has several tokenizations,
so frequencies are compared with probabilities sequence by sequence, not string by string.
"""

from __future__ import annotations

import itertools
import math

import pyro
import pytest
import torch
from pyro import poutine

pytest.importorskip("transformers", reason="needs the [lm] extra: pip install 'retro-imitators[lm]'")

from contract_checks import assert_particles_match_one_at_a_time  # noqa: E402

from retro.inference import AmortizedGuide, elbo, exact, importance, latent_sites  # noqa: E402
from retro.inference.trained import load_trained, save_trained  # noqa: E402
from retro.lm import BaseModelError  # noqa: E402
from retro.models import LanguageModel, PersonaLM, SoftPromptLM  # noqa: E402
from retro.program import ANSWER_SITE  # noqa: E402

NAMES = ["lm", "lm-persona", "lm-soft-prompt"]
QUESTIONS = ["ab", "b"]


def tiny_lm(name, base, max_length=3, finetune="latent"):
    options = dict(template="{question}", max_length=max_length, finetune=finetune)
    if name == "lm":
        return LanguageModel(base, **options)
    if name == "lm-persona":
        return PersonaLM(base, personas=["a", "bb", "ab ba"], **options)
    return SoftPromptLM(base, latent_dim=2, prompt_length=2, **options)


def all_token_sequences(codec, max_length):
    symbols = [t for t in range(codec.vocab_size) if t != codec.eos]
    rows = [list(s) for n in range(max_length + 1) for s in itertools.product(symbols, repeat=n)]
    tokens = torch.full((len(rows), max_length + 1), codec.eos)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return tokens


def answer_distribution(program, questions, condition=None):
    batch = program.encode_questions(questions)
    model = poutine.condition(program.model, data=condition or {})
    trace = poutine.trace(model).get_trace(batch, program.encode_answers([""] * len(questions)))
    return trace.nodes[ANSWER_SITE]["fn"]


@pytest.mark.parametrize("name", NAMES)
def test_normalized_over_token_sequences_for_fixed_latents(name, load_tiny):
    program = tiny_lm(name, load_tiny("ab")).double()
    tokens = all_token_sequences(program.codec, program.max_length)
    sites = latent_sites(program, QUESTIONS[:1], [""])
    condition = {
        n: torch.tensor(1 if s.discrete else 0.7, dtype=torch.float64).expand(
            (len(QUESTIONS),) + s.event_shape
        )
        for n, s in sites.items()
    }
    total = answer_distribution(program, QUESTIONS, condition).log_prob(tokens[:, None, :]).exp().sum(0)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6), total


@pytest.mark.parametrize("name", NAMES)
def test_particles_by_answers_is_one_vectorized_call(name, load_tiny):
    program = tiny_lm(name, load_tiny("ab")).double()
    answers = [s[0] for s in program.sample(QUESTIONS)]
    assert_particles_match_one_at_a_time(program, QUESTIONS, answers)


@pytest.mark.parametrize("name", NAMES)
def test_sampled_token_sequences_have_the_frequencies_log_prob_says(name, load_tiny):
    """4000 draws for one question; the 5 commonest token sequences against p (4-sigma binomial bands, plus the
    Monte Carlo error of p where a continuous latent is integrated with 4000 prior draws)."""
    program = tiny_lm(name, load_tiny("ab"), max_length=2).double()
    n = 4000
    q = program.encode_questions(QUESTIONS[:1])
    with torch.no_grad(), pyro.plate("particles", n, dim=-2):
        draws = poutine.trace(program.model).get_trace(q, None).nodes[ANSWER_SITE]["value"].reshape(n, -1)
    rows, counts = torch.unique(draws, dim=0, return_counts=True)
    top = counts.argsort(descending=True)[:5]
    tokens = rows[top]
    with torch.no_grad():
        if name == "lm-soft-prompt":
            z = torch.randn(n, 1, 2, dtype=torch.float64)
            cache = program.prompt_cache(q)
            log_p = program.answer_distribution(cache, soft=program.soft_prompt(z)).log_prob(
                tokens[:, None, None, :]
            )
            log_p = log_p.reshape(len(top), n)
            p_draws = log_p.exp()
            p, p_err = p_draws.mean(-1), p_draws.std(-1) / math.sqrt(n)
        else:
            fixed = {"persona": torch.arange(3)[:, None]} if name == "lm-persona" else {}
            log_p = answer_distribution(program, QUESTIONS[:1] * 1, fixed or None).log_prob(
                tokens[:, None, None, :]
            )
            if name == "lm-persona":
                log_p = (log_p.reshape(len(top), 3) + program.persona_logits.log_softmax(-1)).logsumexp(-1)
            p, p_err = log_p.reshape(len(top)).exp(), torch.zeros(len(top), dtype=torch.float64)
    frequency = counts[top].double() / n
    sigma = (p * (1 - p) / n + p_err**2).sqrt()
    assert ((frequency - p).abs() <= 4 * sigma).all(), (frequency, p, sigma)


@pytest.mark.parametrize("name", NAMES)
def test_every_estimator_runs(name, load_tiny):
    program = tiny_lm(name, load_tiny("ab", torch.float32))
    answers = [program.codec.decode(program.codec.encode(s[0])) for s in program.sample(QUESTIONS)]
    guide = AmortizedGuide(program, hidden_dim=8, example=(QUESTIONS[:1], answers[:1]))
    results = [
        importance(program, QUESTIONS, answers, guide=guide, proposal=p, num_particles=20).records
        for p in ("guide", "prior", "mixture")
    ]
    results.append(elbo(program, QUESTIONS, answers, guide=guide, num_particles=20).records)
    if name != "lm-soft-prompt":
        results.append(exact(program, QUESTIONS, answers).records)
    for records in results:
        assert len(records) == len(answers)
        assert all(r.answer in answers and r.log_prob <= 1e-6 for r in records)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip_with_the_base_given_again(name, load_tiny, lm_dirs, tmp_path):
    program = tiny_lm(name, load_tiny("ab", torch.float32), finetune="lora")
    with torch.no_grad():  # LoRA B starts at zero: move it, so the round trip has something to carry
        for parameter in program.trained_state().values():
            parameter.add_(0.05 * torch.randn_like(parameter))
    trained = set(program.trained_state())
    assert trained and all("lora_" in k or k.startswith(("persona_logits", "soft_prompt")) for k in trained)
    guide = AmortizedGuide(program, hidden_dim=8)
    save_trained(tmp_path / "ckpt", program, guide, {"note": "test"})
    loaded = load_trained(tmp_path / "ckpt", base=lm_dirs["ab"])
    answers = ["ab", "b"]
    torch.manual_seed(0)
    before = importance(
        program, QUESTIONS, answers, guide=guide, proposal="mixture", num_particles=10, seed=0
    ).records
    torch.manual_seed(0)
    after = importance(
        loaded.imitator, QUESTIONS, answers, guide=loaded.guide, proposal="mixture", num_particles=10, seed=0
    ).records
    assert [r.log_prob for r in before] == [r.log_prob for r in after]
    with pytest.raises(BaseModelError, match="is not the one this was trained on"):
        load_trained(tmp_path / "ckpt", base=lm_dirs["gpt2"])
