"""An answer's log p does not depend on which other questions share its batch, nor on the padding side.

Prompts of very different lengths (1 vs ~30 tokens) and of nearly equal lengths (one length group, the shorter
given first) are scored together and alone, in float32, for a GPT-2-style (absolute positions) and a Llama-style
(rotary) model; the step-by-step path (``init_state``/``step``) must give the teacher-forced value too.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="needs the [lm] extra: pip install 'retro-imitators[lm]'")

from retro.models import LanguageModel, PersonaLM, SoftPromptLM  # noqa: E402

TOLERANCE = 1e-5  # nats, float32 (issue 10)
LONG = "the cat sat on a mat and the dog ran to the park where hello world said a bird in a tree"
NEARLY_LONG = "the cat sat on a mat and the dog ran to the park where hello world said a bird"
# "" reads one start token, LONG about 30; NEARLY_LONG is in LONG's length group (prompts run together) but comes
# first: a batch of one length group must still give each question its own prompt
BATCHES = [
    (["", NEARLY_LONG, LONG, "hi", ""], ["five", "hello world", "", "a bird in a tree", "the"]),
    ([NEARLY_LONG, LONG], ["hello world", "five"]),
    (["", LONG], ["a bird", "the cat"]),
]
PERSONAS = ["You are a cat.\n", "Pirate: "]


def step_log_prob(distribution, tokens: torch.Tensor) -> torch.Tensor:
    """The sum of ``log p(token | earlier tokens)`` over each string and its EOS, one decoding step at a time."""
    shape = distribution.batch_shape
    tokens = tokens.expand(shape + tokens.shape[-1:]).reshape(-1, tokens.shape[-1])
    context, extra = distribution.decoder_inputs()
    decoder = distribution.decoder
    state = decoder.init_state(context, **extra)
    previous = torch.full_like(tokens[:, 0], decoder.bos)
    lengths = (tokens == distribution.eos).long().argmax(-1)
    total = torch.zeros(tokens.shape[0], dtype=torch.float64)
    for t in range(int(lengths.max()) + 1):
        logits, state = decoder.step(state, previous)
        picked = logits.log_softmax(-1).gather(-1, tokens[:, t, None]).squeeze(-1)
        total += torch.where(t <= lengths, picked, torch.zeros_like(picked)).double()
        previous = tokens[:, t]
    return total.reshape(shape)


def scores(imitator, questions, answers, persona=None, soft=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(teacher-forced, step-by-step) log p of each answer, ``[..., B]``."""
    cache = imitator.prompt_cache(imitator.encode_questions(questions))
    tokens = imitator.encode_answers(answers).tokens
    distribution = imitator.answer_distribution(cache, prefix=persona, soft=soft)
    with torch.no_grad():
        return distribution.log_prob(tokens).double(), step_log_prob(distribution, tokens)


def check_batch_invariance(make, persona=None, soft=None):
    """Together vs alone, left vs right padding, teacher forcing vs steps, for each of :data:`BATCHES`.

    ``soft``: a soft prompt per question of the longest batch (a batch of ``B`` questions reads the first ``B``).
    """
    for questions, answers in BATCHES:
        results = {}
        for side in ("left", "right"):
            imitator = make(side)
            assert len(imitator.prompt_ids("")) == 1 and len(imitator.prompt_ids(LONG)) >= 25
            lengths = sorted({len(imitator.prompt_ids(q)) for q in (NEARLY_LONG, LONG)})
            assert len(lengths) == 2 and lengths[0] >= 0.85 * lengths[1]  # one length group
            row = (lambda i: None) if soft is None else (lambda i: soft[..., i : i + 1, :])
            rows = None if soft is None else soft[..., : len(questions), :]
            together, stepwise = scores(imitator, questions, answers, persona, rows)
            alone = torch.stack(
                [
                    scores(imitator, [q], [a], persona, row(i))[0][..., 0]
                    for i, (q, a) in enumerate(zip(questions, answers))
                ],
                -1,
            )
            assert torch.isfinite(together).all()
            assert torch.allclose(together, alone, atol=TOLERANCE, rtol=0), (
                questions,
                side,
                together - alone,
            )
            assert torch.allclose(together, stepwise, atol=TOLERANCE, rtol=0), (
                questions,
                side,
                together - stepwise,
            )
            results[side] = together
        assert torch.allclose(results["left"], results["right"], atol=TOLERANCE, rtol=0), questions


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_plain_prompts_of_very_different_lengths(load_tiny, kind):
    base = load_tiny(kind, torch.float32)
    check_batch_invariance(
        lambda side: LanguageModel(base, template="{question}", padding_side=side, max_length=16)
    )


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_after_a_persona_prefix(load_tiny, kind):
    base = load_tiny(kind, torch.float32)
    check_batch_invariance(
        lambda side: PersonaLM(
            base, personas=PERSONAS, template="{question}", padding_side=side, max_length=16
        ),
        persona=torch.arange(len(PERSONAS))[:, None],
    )


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_with_a_soft_prompt(load_tiny, kind):
    base = load_tiny(kind, torch.float32)
    torch.manual_seed(0)

    def make(side):
        torch.manual_seed(0)  # the same soft-prompt network on both sides
        return SoftPromptLM(
            base, latent_dim=3, prompt_length=2, template="{question}", padding_side=side, max_length=16
        )

    with torch.no_grad():
        soft = make("left").soft_prompt(torch.randn(len(BATCHES[0][0]), 3))
    check_batch_invariance(make, soft=soft)
