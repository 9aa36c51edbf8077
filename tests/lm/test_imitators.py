"""The language-model imitators: the persona mixture equals explicit enumeration, prefixes are computed once."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro import poutine

pytest.importorskip("transformers", reason="needs the [lm] extra: pip install 'retro-imitators[lm]'")

from retro.inference import AmortizedGuide, exact, importance  # noqa: E402
from retro.models import LanguageModel, PersonaLM, SoftPromptLM  # noqa: E402

QUESTIONS = ["what is two plus three", "hi", "the cat", "hi"]
ANSWERS = ["five", "hello world", "", "a bird"]
PERSONAS = ["You are a cat.\n", "You are a dog that talks and talks and talks.\n", "Pirate: "]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_persona_mixture_equals_explicit_enumeration(load_tiny, kind):
    """float64: log sum_k w_k p(answer | persona k's text + prompt), each term from a plain `lm` whose template
    starts with that persona's text, to 1e-8 nats."""
    base = load_tiny(kind)
    template = "Q: {question}\nA: "
    mixture = PersonaLM(base, personas=PERSONAS, template=template, max_length=12).double()
    with torch.no_grad():
        mixture.persona_logits.copy_(torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64))
    got = torch.tensor([r.log_prob for r in exact(mixture, QUESTIONS, ANSWERS)], dtype=torch.float64)
    weights = mixture.persona_logits.detach().log_softmax(-1)
    terms = torch.stack(
        [
            weights[k]
            + torch.tensor(
                [
                    r.log_prob
                    for r in exact(
                        LanguageModel(base, template=p + template, max_length=12), QUESTIONS, ANSWERS
                    )
                ],
                dtype=torch.float64,
            )
            for k, p in enumerate(PERSONAS)
        ]
    )
    assert torch.allclose(got, terms.logsumexp(0), atol=1e-8, rtol=0), (got, terms.logsumexp(0))


class ForwardLog:
    """Records the (rows, tokens) of every forward pass of a model, to see what is computed how often."""

    def __init__(self, model):
        self.calls: list[tuple[int, int]] = []
        model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        x = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
        self.calls.append(tuple(x.shape[:2]))


def test_prefixes_and_prompts_are_computed_once_not_per_particle(load_tiny):
    base = load_tiny("gpt2")
    log = ForwardLog(base.model)
    mixture = PersonaLM(base, personas=PERSONAS, template="Q: {question}\nA: ", max_length=12).double()
    batch = mixture.encode_questions(QUESTIONS)
    answers = mixture.encode_answers(ANSWERS)
    for _ in range(2):  # two calls: the persona texts are computed the first time only
        with pyro.plate("particles", 50, dim=-2):
            poutine.trace(mixture.model).get_trace(batch, answers).log_prob_sum()
    rows = [r for r, _ in log.calls]
    answer_passes = [i for i, r in enumerate(rows) if r == 50 * 4]
    assert len(answer_passes) == 2
    first, second = rows[: answer_passes[0]], rows[answer_passes[0] + 1 : answer_passes[1]]
    assert first[0] == len(PERSONAS)  # the persona texts, once for the run
    # 3 distinct questions' prompts, once per persona (in groups of similar length), in each call
    assert sum(first[1:]) == sum(second) == len(PERSONAS) * 3
    # the answer pass reads only the answer tokens (the prompt is in the cache)
    assert log.calls[answer_passes[0]][1] == answers.tokens.shape[-1] - 1


def test_soft_prompt_runs_every_estimator_with_a_guide_from_its_latent_site(load_tiny):
    base = load_tiny("llama", torch.float32)
    imitator = SoftPromptLM(base, latent_dim=3, prompt_length=2, template="Q: {question}\nA: ", max_length=12)
    guide = AmortizedGuide(imitator, hidden_dim=8)
    assert set(guide.sites) == {"z"} and guide.sites["z"].event_shape == (3,)
    records = importance(imitator, QUESTIONS, ANSWERS, guide=guide, proposal="mixture", num_particles=20)
    assert all(torch.isfinite(torch.tensor(r.log_prob)) and r.stderr >= 0 for r in records)
    # z changes the answer's distribution (the soft prompt is read)
    cache = imitator.prompt_cache(imitator.encode_questions(["hi"]))
    tokens = imitator.encode_answers(["hello"]).tokens
    soft = imitator.soft_prompt(torch.randn(2, 1, 3))
    log_probs = imitator.answer_distribution(cache, soft=soft).log_prob(tokens)
    assert log_probs.shape == (2, 1) and (log_probs[0] - log_probs[1]).abs().item() > 1e-4


def test_teacher_forcing_in_row_chunks_gives_the_same_numbers(load_tiny, monkeypatch):
    """Memory is bounded by scoring a few rows at a time; each row still reads its own question's prompt."""
    import retro.lm.decoder as decoder_module

    mixture = PersonaLM(load_tiny("gpt2"), personas=PERSONAS, template="Q: {question}\nA: ", max_length=12)
    whole = [r.log_prob for r in exact(mixture, QUESTIONS, ANSWERS)]
    monkeypatch.setattr(decoder_module, "LOGITS_BUDGET", 1)  # one row at a time
    assert [r.log_prob for r in exact(mixture, QUESTIONS, ANSWERS)] == pytest.approx(whole, abs=1e-12)
