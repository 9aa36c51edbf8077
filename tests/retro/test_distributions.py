import itertools

import pytest
import torch

from retro.distributions import Memory, StringDistribution, smoothed_labels
from retro.errors import RetroError
from retro.nets import DECODERS, GRUDecoder, make_decoder


def string_distribution(kind, vocab_size, context, max_length, **options):
    """A distribution with a ``kind`` decoder; an attention one gets a memory of 3 positions per context row
    (its last position masked), shared across any leading sample dims."""
    decoder = make_decoder(kind, vocab_size, context.shape[-1], hidden_dim=16, memory_dim=6).to(context.dtype)
    memory = None
    if kind == "attention":
        states = torch.randn(context.shape[:-1] + (3, 6), dtype=context.dtype)
        mask = torch.tensor([True, True, False]).expand(context.shape[:-1] + (3,))
        memory = Memory(states, mask)
    return StringDistribution(decoder, context, max_length, vocab_size - 1, memory=memory, **options)


def every_string(num_symbols, max_length, eos):
    rows = [s for n in range(max_length + 1) for s in itertools.product(range(num_symbols), repeat=n)]
    tokens = torch.full((len(rows), max_length + 1), eos)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return tokens


@pytest.mark.parametrize("kind", DECODERS)
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_normalized_over_every_string(kind, temperature, float64):
    dist = string_distribution(kind, 4, torch.randn(3, 5), max_length=4, temperature=temperature)
    total = dist.log_prob(every_string(3, 4, 3)[:, None, :]).exp().sum(0)
    assert torch.allclose(total, torch.ones(3), atol=1e-6)


@pytest.mark.parametrize("kind", DECODERS)
def test_cached_sampling_agrees_with_teacher_forcing(kind, float64):
    """Frequencies of ancestral samples (cached state) match exp(log_prob) (teacher forcing), 4-sigma bands."""
    dist = string_distribution(kind, 3, torch.randn(2), max_length=3)
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


def test_memory_is_shared_across_particles_not_copied(float64):
    """Particles x questions reading one memory per question score as each (particle, question) row alone."""
    dist = string_distribution("attention", 5, torch.randn(4, 3), max_length=6)
    contexts = torch.randn(7, 4, 3)  # particles x questions, e.g. a latent code per particle
    per_particle = StringDistribution(dist.decoder, contexts, 6, 4, memory=dist.memory)
    x = per_particle.sample()
    lp = per_particle.log_prob(x)
    assert per_particle.decoder_inputs()[1]["memory"].states.shape == (4, 3, 6)  # not 28 rows
    for k, b in ((0, 0), (3, 1), (6, 3)):
        row_memory = Memory(dist.memory.states[b : b + 1], dist.memory.mask[b : b + 1])
        one = StringDistribution(dist.decoder, contexts[k, b : b + 1], 6, 4, memory=row_memory)
        assert torch.allclose(one.log_prob(x[k, b]), lp[k, b])


def test_strings_longer_than_max_length_have_zero_probability():
    decoder = GRUDecoder(vocab_size=3, context_dim=1, hidden_dim=4)
    dist = StringDistribution(decoder, torch.zeros(1), max_length=2, eos=2)
    assert dist.log_prob(torch.tensor([0, 1, 0, 2])).item() == float("-inf")
    assert torch.isfinite(dist.log_prob(torch.tensor([0, 1, 2, 2])))


def test_memory_that_is_not_a_suffix_is_expanded_and_a_mismatch_is_named(float64):
    """A memory varying along the particles (not a suffix of the batch) is expanded row by row; one that does not
    broadcast is a one-line error naming both shapes."""
    dist = string_distribution("attention", 5, torch.randn(2, 4, 3), max_length=5)  # memory [2, 4, 3, 6]
    x = dist.sample()
    per_particle = Memory(
        dist.memory.states[:, :1], dist.memory.mask[:, :1]
    )  # [2, 1]: varies along dim 0 only
    spread = StringDistribution(dist.decoder, dist.context, 5, 4, memory=per_particle)
    assert spread.decoder_inputs()[1]["memory"].states.shape == (8, 3, 6)
    one = StringDistribution(
        dist.decoder, dist.context[1, 2:3], 5, 4, memory=Memory(*(t[1, :1] for t in per_particle))
    )
    assert torch.allclose(one.log_prob(x[1, 2]), spread.log_prob(x)[1, 2])
    wrong = StringDistribution(
        dist.decoder, dist.context, 5, 4, memory=Memory(*(t[:, :3] for t in dist.memory))
    )
    with pytest.raises(RetroError, match=r"memory of batch shape \(2, 3\) does not broadcast to .* \(2, 4\)"):
        wrong.log_prob(x)


@pytest.mark.parametrize("kind", DECODERS)
def test_smoothed_labels_mix_each_decision_with_the_uniform_target_inside_the_block_only(kind, float64):
    """Each decision up to the answer's EOS: (1 - eps) log p(token) + eps mean_v log p(v), by hand from the
    per-step distributions of the cached decoder; the forced EOS at max_length is no decision."""
    torch.manual_seed(0)
    dist = string_distribution(kind, 4, torch.randn(2, 5), max_length=3)
    answers = torch.tensor([[0, 3, 3, 3], [1, 1, 2, 3]])  # the second reaches max_length: its EOS is forced
    plain = dist.log_prob(answers)
    with smoothed_labels(0.25):
        smoothed = dist.log_prob(answers)
    assert torch.equal(dist.log_prob(answers), plain)  # the block is over: log probabilities again
    context, extra = dist.decoder_inputs()
    state = dist.decoder.init_state(context, **extra)
    previous = torch.full((2,), dist.decoder.bos)
    expected = torch.zeros(2, dtype=plain.dtype)
    exact = torch.zeros(2, dtype=plain.dtype)
    for t in range(3):
        logits, state = dist.decoder.step(state, previous)
        log_probs = logits.log_softmax(-1)
        picked = log_probs.gather(-1, answers[:, t, None]).squeeze(-1)
        decides = torch.tensor([t <= 1, True])  # the first answer ended at its EOS, position 1
        expected += torch.where(decides, 0.75 * picked + 0.25 * log_probs.mean(-1), 0.0)
        exact += torch.where(decides, picked, 0.0)
        previous = answers[:, t]
    assert torch.allclose(plain, exact, atol=1e-10)
    assert torch.allclose(smoothed, expected, atol=1e-10)
    assert not torch.allclose(smoothed, plain)


def test_label_smoothing_outside_zero_to_one_is_an_error():
    with pytest.raises(RetroError, match=r"label smoothing must be in \[0, 1\), got 1"):
        with smoothed_labels(1.0):
            pass
