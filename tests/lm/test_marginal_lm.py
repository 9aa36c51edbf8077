"""The marginal over tokenizations with a real tokenizer (a byte-level BPE trained with ``tokenizers``) driving a
causal LM: it sums to one over every string, bounds the canonical tokenization from above, and importance sampling
over tokenizations composes with the persona latent."""

from __future__ import annotations

import itertools

import pytest
import torch

pytest.importorskip("transformers", reason="needs the [lm] extra: pip install 'retro-imitators[lm]'")

from retro.inference import exact  # noqa: E402
from retro.inference.marginal import exact_marginal, marginal_importance  # noqa: E402
from retro.models import LanguageModel, PersonaLM  # noqa: E402
from retro.tokenizations import TokenLattice  # noqa: E402


def test_lm_marginal_sums_to_one_over_every_string(load_tiny):
    """The BPE over {a, b}: every token sequence spells a valid string, so the strings' marginals sum to 1."""
    imitator = LanguageModel(load_tiny("ab"), template="{question}", max_length=3).double()
    codec = imitator.codec
    spelling = [t for t in range(codec.vocab_size) if codec.token_bytes(t)]
    spelled: dict[str, int] = {}
    for n in range(4):
        for seq in itertools.product(spelling, repeat=n):
            text = b"".join(codec.token_bytes(t) for t in seq).decode()
            spelled[text] = spelled.get(text, 0) + 1
    texts = sorted(spelled)
    marginal = exact_marginal(imitator, ["ab"] * len(texts), texts).records
    total = torch.tensor([r.log_prob for r in marginal]).logsumexp(0).exp().item()
    assert abs(total - 1.0) < 1e-6
    canonical = exact(imitator, ["ab"] * len(texts), texts).records
    assert any(m.num_particles > 1 for m in marginal)
    for c, m in zip(canonical, marginal):
        assert m.num_particles == spelled[m.answer]
        assert c.log_prob <= m.log_prob + 1e-12
        if m.num_particles == 1:
            assert m.log_prob == pytest.approx(c.log_prob, abs=1e-12)


def test_byte_level_tokenizations_of_text(load_tiny):
    """Text outside the merges (a two-byte character) is spelled byte by byte in many ways; all decode back."""
    imitator = LanguageModel(load_tiny("gpt2"), template="Q: {question}\nA: ", max_length=12).double()
    lattice = TokenLattice(imitator.codec)
    for answer in ("hello", "café", "the cat"):
        data = b" " + answer.encode()  # the separator belongs to the answer
        paths = lattice.tokenizations(data, 12)
        assert len(paths) > 1 and tuple(imitator.codec.encode(answer)) in paths
        assert all(imitator.codec.decode(p) == answer for p in paths)


def test_lm_marginal_importance_with_a_persona_latent(load_tiny):
    """Persona drawn from its prior, tokenization from the constrained proposal: within 4 standard errors of the
    exact marginal (personas enumerated, tokenizations enumerated)."""
    base = load_tiny("gpt2")
    imitator = PersonaLM(
        base, personas=["You are a cat.\n", "Pirate: "], template="Q: {question}\nA: ", max_length=8
    ).double()
    questions, answers = ["hi", "the cat"], ["hello", "a cat"]
    truth = exact_marginal(imitator, questions, answers).records
    canonical = exact(imitator, questions, answers).records
    records = marginal_importance(imitator, questions, answers, num_particles=200).records
    for record, t, c in zip(records, truth, canonical):
        assert t.log_prob > c.log_prob
        assert abs(record.log_prob - t.log_prob) <= 4 * record.stderr
        assert record.target == "marginal" and record.ess > 1
