import itertools

import pytest
import torch

from retro.distributions import StringDistribution
from retro.nets import GRUDecoder, TransformerDecoder


def every_string(num_symbols, max_length, eos):
    rows = [s for n in range(max_length + 1) for s in itertools.product(range(num_symbols), repeat=n)]
    tokens = torch.full((len(rows), max_length + 1), eos)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return tokens


@pytest.mark.parametrize("decoder_class", [GRUDecoder, TransformerDecoder])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_normalized_over_every_string(decoder_class, temperature, float64):
    decoder = decoder_class(vocab_size=4, context_dim=5, hidden_dim=16)
    context = torch.randn(3, 5)
    dist = StringDistribution(decoder, context, max_length=4, eos=3, temperature=temperature)
    total = dist.log_prob(every_string(3, 4, 3)[:, None, :]).exp().sum(0)
    assert torch.allclose(total, torch.ones(3), atol=1e-6)


@pytest.mark.parametrize("decoder_class", [GRUDecoder, TransformerDecoder])
def test_cached_sampling_agrees_with_teacher_forcing(decoder_class, float64):
    """Frequencies of ancestral samples (cached state) match exp(log_prob) (teacher forcing), 4-sigma bands."""
    decoder = decoder_class(vocab_size=3, context_dim=2, hidden_dim=8)
    dist = StringDistribution(decoder, torch.randn(2), max_length=3, eos=2)
    n = 20000
    samples = dist.sample(torch.Size([n]))
    strings = every_string(2, 3, 2)
    probs = dist.log_prob(strings).exp()
    counts = (samples[:, None, :] == strings[None]).all(-1).double().sum(0)
    sigma = (probs * (1 - probs) / n).sqrt()
    assert torch.all((counts / n - probs).abs() <= 4 * sigma + 1e-12)


def test_any_batch_shape_and_narrow_values(float64):
    decoder = GRUDecoder(vocab_size=5, context_dim=3, hidden_dim=8)
    dist = StringDistribution(decoder, torch.randn(4, 3), max_length=6, eos=4)
    x = dist.sample(torch.Size([7]))
    assert x.shape == (7, 4, 7)
    lp = dist.log_prob(x)
    assert lp.shape == (7, 4)
    one = StringDistribution(decoder, dist.context[1:2], max_length=6, eos=4)
    assert torch.allclose(one.log_prob(x[3, 1]), lp[3, 1])
    narrow = x[..., : int((x != 4).sum(-1).max()) + 1]  # padding width does not matter
    assert torch.allclose(dist.log_prob(narrow), lp)


def test_strings_longer_than_max_length_have_zero_probability():
    decoder = GRUDecoder(vocab_size=3, context_dim=1, hidden_dim=4)
    dist = StringDistribution(decoder, torch.zeros(1), max_length=2, eos=2)
    assert dist.log_prob(torch.tensor([0, 1, 0, 2])).item() == float("-inf")
    assert torch.isfinite(dist.log_prob(torch.tensor([0, 1, 2, 2])))
