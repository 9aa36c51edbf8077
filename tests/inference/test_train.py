import math

import pytest
import torch

from retro.errors import RetroError
from retro.humans import make_human
from retro.inference import AmortizedGuide, exact, summarize
from retro.inference.train import TrainConfig, elbo_loss, train
from retro.models import make_imitator


@pytest.fixture(scope="module")
def data():
    human = make_human("arithmetic", max_length=16)
    return human.draw(1500, seed=0), human.draw(100, seed=1)


@pytest.mark.parametrize("name", ["seq2seq", "mixture"])
def test_training_improves_exact_heldout_log_prob(name, data):
    (q, a), (hq, ha) = data
    torch.manual_seed(0)
    imitator = make_imitator(
        name, max_length=16, hidden_dim=48, **({"num_styles": 3} if name == "mixture" else {})
    )
    guide = AmortizedGuide(imitator, hidden_dim=32) if name == "mixture" else None
    before = summarize(exact(imitator, hq, ha))
    report = train(
        imitator,
        q,
        a,
        guide=guide,
        heldout=(hq, ha),
        config=TrainConfig(steps=150, eval_every=75, progress=False),
    )
    after = summarize(exact(imitator, hq, ha))
    # an improvement of many standard errors of the held-out mean, measured exactly (not by the estimator)
    assert after.log_prob_mean - before.log_prob_mean > 4 * (after.stderr + before.stderr)
    assert report.best_heldout == max(row["heldout_log_prob"] for row in report.history)


def test_discrete_guide_parameters_receive_gradient(data):
    (q, a), _ = data
    imitator = make_imitator("mixture", max_length=16, hidden_dim=32, num_styles=3)
    guide = AmortizedGuide(imitator, hidden_dim=16)
    loss = elbo_loss(imitator, guide)(imitator.encode_questions(q[:16]), imitator.encode_answers(a[:16]))
    loss.backward()
    head = guide.heads["style"]
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


def test_minutes_cap_and_nan_loss(data):
    (q, a), (hq, ha) = data
    imitator = make_imitator("seq2seq", max_length=16, hidden_dim=16)
    report = train(
        imitator, q, a, config=TrainConfig(steps=10**6, minutes=0.05, eval_every=10**6, progress=False)
    )
    assert report.steps < 10**6 and report.seconds < 30
    with torch.no_grad():
        imitator.decoder.out.bias.fill_(math.nan)
    with pytest.raises(RetroError, match="training stopped at step 1: the loss is nan"):
        train(imitator, q, a, config=TrainConfig(steps=5, progress=False))
