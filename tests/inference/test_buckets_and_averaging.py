"""Length-bucketed minibatches and the moving average of the parameters (``TrainConfig.length_buckets`` and
``average_decay``): what they do, checked against a direct computation."""

import pytest
import torch

from retro.errors import RetroError
from retro.humans import make_human
from retro.inference import AmortizedGuide
from retro.inference.train import TrainConfig, _bucketed, train
from retro.models import make_imitator


def test_bucketed_order_is_a_permutation_cut_into_runs_of_sorted_lengths():
    generator = torch.Generator().manual_seed(3)
    keys = torch.randperm(1000, generator=generator)  # distinct keys: each answer's rank is its key
    order = torch.randperm(1000, generator=generator)
    batch, pools = 16, 10
    bucketed = _bucketed(order, keys, batch, pools, torch.Generator().manual_seed(5))
    assert torch.equal(
        torch.sort(bucketed).values, torch.arange(1000)
    )  # a permutation (the training state's check)
    full = 1000 // batch * batch
    for start in range(0, full, batch):
        members = bucketed[start : start + batch]
        # a minibatch is one run of consecutive keys within its pool: the answers its pool sorted next to each other
        pool = next(p for p in order.split(batch * pools) if torch.isin(members[0], p))
        assert torch.isin(members, pool).all()
        ranks = torch.searchsorted(torch.sort(keys[pool]).values, keys[members])
        assert ranks.max() - ranks.min() == batch - 1 and ranks.min() % batch == 0
    assert torch.equal(bucketed, _bucketed(order, keys, batch, pools, torch.Generator().manual_seed(5)))
    assert not torch.equal(bucketed, _bucketed(order, keys, batch, pools, torch.Generator().manual_seed(6)))


def test_length_buckets_shorten_the_padded_minibatches():
    """The same answers in the same number of minibatches, padded to far fewer positions."""
    human = make_human("typist", max_length=32)
    questions, answers = human.draw(2000, seed=0)
    lengths = human.encode_answers(answers).lengths
    order = torch.randperm(len(answers), generator=torch.Generator().manual_seed(0))
    bucketed = _bucketed(order, lengths, 32, 50, torch.Generator().manual_seed(1))

    def padded(o):
        return sum(int(lengths[o[s : s + 32]].max()) * 32 for s in range(0, 2000 // 32 * 32, 32))

    assert padded(bucketed) < 0.8 * padded(order)


def _run(options, steps=8):
    human = make_human("arithmetic", max_length=16)
    questions, answers = human.draw(400, seed=0)
    torch.manual_seed(0)
    imitator = make_imitator("latent", max_length=16, hidden_dim=16, latent_dim=2)
    guide = AmortizedGuide(imitator, hidden_dim=16)
    states = []
    config = TrainConfig(
        steps=steps, batch_size=16, eval_every=steps, progress=False, checkpoint_every=1, **options
    )
    train(imitator, questions, answers, guide, None, config, on_checkpoint=states.append)
    return imitator, guide, states


def test_average_decay_keeps_the_moving_average_of_the_trajectory():
    """Averaging leaves the trajectory as it was, and the kept model is the moving average of its steps."""
    decay = 0.7
    _, _, plain = _run({})
    imitator, guide, averaged = _run({"average_decay": decay})
    names = list(averaged[0].averaged_parameters)
    for a, b in zip(plain, averaged):
        assert all(torch.equal(a.parameters[k], b.parameters[k]) for k in a.parameters)
    torch.manual_seed(0)  # the parameters before the first step (not in any state): built again
    fresh = make_imitator("latent", max_length=16, hidden_dim=16, latent_dim=2)
    fresh_guide = AmortizedGuide(fresh, hidden_dim=16)
    expected = {f"imitator.{k}": v.detach().clone() for k, v in fresh.named_parameters()}
    expected.update({f"guide.{k}": v.detach().clone() for k, v in fresh_guide.named_parameters()})
    for state in plain[: len(plain) - 1]:  # the last state repeats the final step (written at the end)
        rate = 1 - min(decay, (1 + state.step) / (10 + state.step))
        expected = {k: torch.lerp(expected[k], state.parameters[k], rate) for k in names}
    kept = {f"imitator.{k}": v for k, v in imitator.named_parameters()}
    kept.update({f"guide.{k}": v for k, v in guide.named_parameters()})
    for k in names:
        torch.testing.assert_close(kept[k], expected[k], rtol=1e-6, atol=1e-7)
        assert torch.equal(kept[k], averaged[-1].averaged_parameters[k])
    assert any(not torch.equal(kept[k], plain[-1].parameters[k]) for k in names)  # not the last step's


@pytest.mark.parametrize("options", [{"average_decay": 1.0}, {"average_decay": -0.1}, {"length_buckets": 0}])
def test_bad_settings_are_one_line_errors(options):
    with pytest.raises(RetroError, match="training: (average_decay|length_buckets)"):
        TrainConfig(**options)
