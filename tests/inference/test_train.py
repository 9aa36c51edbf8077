import importlib
import math

import pytest
import torch

from retro.errors import RetroError
from retro.humans import make_human
from retro.inference import AmortizedGuide, exact, summarize
from retro.inference.train import COSINE_FINAL_FRACTION, TrainConfig, elbo_loss, learning_rate_at, train
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
    before = summarize(exact(imitator, hq, ha).records)
    report = train(
        imitator,
        q,
        a,
        guide=guide,
        heldout=(hq, ha),
        config=TrainConfig(steps=150, eval_every=75, progress=False),
    )
    after = summarize(exact(imitator, hq, ha).records)
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


def _latent_run():
    torch.manual_seed(0)
    imitator = make_imitator("latent", max_length=16, hidden_dim=16, latent_dim=2)
    return imitator, AmortizedGuide(imitator, hidden_dim=16)


@pytest.mark.parametrize(
    "schedule, options",
    [("constant", {}), ("cosine", {}), ("cosine", {"length_buckets": 4, "average_decay": 0.9})],
)
def test_resuming_a_saved_state_continues_the_run_exactly(data, tmp_path, schedule, options):
    """Stop at step 6 (state written to disk and read back), resume to step 12: the same parameters, history and
    best as an uninterrupted 12-step run, to the bit (same minibatches, random draws and step sizes; with length
    buckets and a moving average of the parameters too)."""
    from retro.inference.train_state import load_train_state, save_train_state

    (questions, answers), heldout = data
    config = TrainConfig(
        steps=12,
        batch_size=16,
        eval_every=3,
        eval_particles=4,
        eval_answers=8,
        progress=False,
        checkpoint_every=6,
        lr_schedule=schedule,
        **options,
    )
    imitator, guide = _latent_run()
    states = []
    straight = train(imitator, questions, answers, guide, heldout, config, on_checkpoint=states.append)
    assert [s.step for s in states] == [6, 12, 12]
    save_train_state(tmp_path / "state", states[0], {"note": "halfway"})
    state, info = load_train_state(tmp_path / "state")
    assert info == {"note": "halfway"} and state.step == 6
    imitator2, guide2 = _latent_run()
    resumed = train(imitator2, questions, answers, guide2, heldout, config, resume=state)
    for a, b in zip(
        list(imitator.state_dict().values()) + list(guide.state_dict().values()),
        list(imitator2.state_dict().values()) + list(guide2.state_dict().values()),
    ):
        assert torch.equal(a, b)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in straight.history]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.history]
    assert (straight.best_step, straight.best_heldout) == (resumed.best_step, resumed.best_heldout)


def test_early_stopping_after_patience_evaluations(data):
    (questions, answers), heldout = data
    torch.manual_seed(0)
    imitator = make_imitator("seq2seq", max_length=16, hidden_dim=16)
    # A zero learning rate never improves the (exact) held-out log p: stop after 2 evaluations without a new best.
    config = TrainConfig(
        steps=100, batch_size=16, learning_rate=0.0, eval_every=5, eval_answers=8, progress=False, patience=2
    )
    report = train(imitator, questions, answers, heldout=heldout, config=config)
    assert report.stopped_early and report.steps == 15 and report.best_step == 5


def test_cosine_schedule_falls_from_the_peak_to_its_floor():
    config = TrainConfig(steps=101, learning_rate=1e-2, lr_schedule="cosine")
    rates = [learning_rate_at(config, step) for step in range(1, 102)]
    assert rates[0] == pytest.approx(1e-2) and rates[-1] == pytest.approx(COSINE_FINAL_FRACTION * 1e-2)
    assert rates[50] == pytest.approx((1 + COSINE_FINAL_FRACTION) / 2 * 1e-2)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert learning_rate_at(TrainConfig(steps=101, learning_rate=1e-2), 70) == 1e-2
    with pytest.raises(RetroError, match="lr_schedule must be one of constant, cosine"):
        TrainConfig(lr_schedule="linear")


def test_dropout_acts_in_training_steps_only(data):
    """Steps run with dropout (training mode); evaluations and the trained model score deterministically."""
    (questions, answers), heldout = data
    torch.manual_seed(0)
    imitator = make_imitator("seq2seq", max_length=16, hidden_dim=32, decoder="attention", dropout=0.5)
    q, a = heldout[0][:5], heldout[1][:5]
    thinned = [r.log_prob for r in exact(imitator, q, a).records]
    assert thinned != [
        r.log_prob for r in exact(imitator, q, a).records
    ]  # training mode: a new mask per call
    config = TrainConfig(steps=30, batch_size=16, eval_every=10, eval_answers=20, progress=False)
    report = train(imitator, questions, answers, heldout=heldout, config=config)
    assert not imitator.training and not any(m.training for m in imitator.modules())
    assert [r.log_prob for r in exact(imitator, q, a).records] == [
        r.log_prob for r in exact(imitator, q, a).records
    ]
    # The best evaluation scored the restored parameters in eval mode: scoring them again gives its value.
    best = next(row for row in report.history if row["step"] == report.best_step)
    heldout_mean = summarize(exact(imitator, heldout[0][:20], heldout[1][:20]).records).log_prob_mean
    assert heldout_mean == pytest.approx(best["heldout_log_prob"], abs=1e-5)
    with pytest.raises(RetroError, match=r"dropout must be in \[0, 1\), got 1.0"):
        make_imitator("seq2seq", dropout=1.0)


def test_label_smoothing_acts_in_training_steps_only(data):
    """The step's loss is label-smoothed; the evaluation of the same (unchanged, lr 0) parameters is not."""
    (questions, answers), heldout = data

    def first_step(label_smoothing):
        torch.manual_seed(0)
        imitator = make_imitator("seq2seq", max_length=16, hidden_dim=32)
        config = TrainConfig(
            steps=1,
            batch_size=32,
            learning_rate=0.0,
            eval_every=1,
            eval_answers=20,
            progress=False,
            label_smoothing=label_smoothing,
        )
        return train(imitator, questions, answers, heldout=heldout, config=config).history[0], imitator

    plain, imitator = first_step(None)
    smoothed, _ = first_step(0.5)
    assert smoothed["heldout_log_prob"] == plain["heldout_log_prob"]
    assert smoothed["loss"] != pytest.approx(plain["loss"], rel=1e-3)
    with pytest.raises(RetroError, match=r"label_smoothing must be in \[0, 1\), got 1"):
        TrainConfig(label_smoothing=1.0)
    with pytest.raises(RetroError, match="label_smoothing is for retrodiction objectives"):
        train(
            imitator,
            questions,
            answers,
            objective=elbo_loss(imitator, None),
            config=TrainConfig(steps=1, progress=False, label_smoothing=0.1),
        )


def test_kept_parameters_are_the_latest_within_monte_carlo_error_of_the_best(data, monkeypatch):
    """Held-out scores, as the estimator would give them on the same answers (mean, standard error, Monte Carlo
    part): -1.52 is within 2 x sqrt(2) x 0.01 of the best -1.50, so the later parameters are kept; -1.60 is not.
    Two evaluations without a new best end the run (patience 2), restoring the parameters of step 15."""
    training = importlib.import_module("retro.inference.train")  # the package's ``train`` is the function

    (questions, answers), heldout = data
    scores = iter([(-2.0, 0.2, 0.01), (-1.5, 0.2, 0.01), (-1.52, 0.2, 0.01), (-1.6, 0.2, 0.01)])
    monkeypatch.setattr(training, "_heldout_log_prob", lambda *args: next(scores))
    torch.manual_seed(0)
    imitator = make_imitator("seq2seq", max_length=16, hidden_dim=16)
    kept = {}
    config = TrainConfig(steps=100, batch_size=16, eval_every=5, eval_answers=8, progress=False, patience=2)
    report = train(
        imitator,
        questions,
        answers,
        heldout=heldout,
        config=config,
        on_improve=lambda r: kept.update(
            {r.best_step: {k: v.clone() for k, v in imitator.state_dict().items()}}
        ),
    )
    assert report.stopped_early and report.steps == 20
    assert (report.best_step, report.best_heldout) == (15, -1.52) and sorted(kept) == [5, 10, 15]
    assert [row["heldout_mc_stderr"] for row in report.history] == [0.01] * 4
    assert all(torch.equal(v, kept[15][k]) for k, v in imitator.state_dict().items())
