"""The IWAE objective: its value is the expected importance estimate; DReG and VIMCO are unbiased (DReG with far
less guide-gradient variance); discrete guides get gradients; training with it improves held-out log p.

Tolerances come from Monte Carlo standard errors: per-parameter gradient comparisons use a Bonferroni bound over
the parameters (familywise error 1%)."""

import itertools
import math
from statistics import NormalDist

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import RenyiELBO

from programs import tiny_program
from retro.errors import RetroError
from retro.humans import make_human
from retro.inference import AmortizedGuide, exact, importance
from retro.inference.iwae import IWAEObjective
from retro.inference.log_weights import enumerated_values, site_sum
from retro.inference.train import TrainConfig, train
from retro.models import LatentSeq2Seq, make_imitator
from retro.text import AlphabetCodec

QUESTIONS, ANSWERS = ["ab", "b", "a", "bb"], ["a", "bb", "ab", ""]


def bonferroni(count: int, familywise: float = 0.01) -> float:
    """Two-sided z threshold for ``count`` simultaneous comparisons."""
    return NormalDist().inv_cdf(1 - familywise / (2 * count))


def small_latent():
    imitator = LatentSeq2Seq(AlphabetCodec("ab"), max_length=3, hidden_dim=16, latent_dim=2)
    return imitator, AmortizedGuide(imitator, hidden_dim=16)


def encoded(program, questions=QUESTIONS, answers=ANSWERS):
    return program.encode_questions(questions), program.encode_answers(answers)


def gradient_draws(objective, params, q, a, draws: int) -> torch.Tensor:
    """``[draws, P]``: the objective's gradient with respect to ``params`` (zeros where unused), one row per draw."""
    rows = []
    for _ in range(draws):
        grads = torch.autograd.grad(objective(q, a), params, allow_unused=True)
        rows.append(
            torch.cat(
                [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]
            )
        )
    return torch.stack(rows).double()


def z_scores(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Per-parameter z of the difference of two Monte Carlo means (parameters with any variance)."""
    variance = first.var(0) / len(first) + second.var(0) / len(second)
    moving = variance > 0
    return (first.mean(0) - second.mean(0))[moving] / variance[moving].sqrt()


@pytest.mark.parametrize("name, discrete", [("latent", "auto"), ("custom-care", "vimco")])
def test_value_is_minus_the_expected_importance_estimate(name, discrete, float64):
    if name == "latent":
        program, guide = small_latent()
    else:
        program, _ = tiny_program(name)
        guide = AmortizedGuide(program, hidden_dim=16)
    program, guide = program.double(), guide.double()
    objective = IWAEObjective(program, guide, num_particles=8, discrete=discrete)
    q, a = encoded(program)
    repeats = 300
    with torch.no_grad():
        values = torch.tensor([-objective(q, a).item() for _ in range(repeats)])
    assert values[-1].item() == objective.last["iwae"]
    records = importance(
        program, QUESTIONS * repeats, ANSWERS * repeats, guide=guide, num_particles=8
    ).records
    estimates = torch.tensor([r.log_prob for r in records]).reshape(repeats, len(ANSWERS)).mean(1)
    stderr = math.sqrt(values.var() / repeats + estimates.var() / repeats)
    assert abs(values.mean() - estimates.mean()) < 4 * stderr, (values.mean(), estimates.mean(), stderr)


def test_enumerated_mixture_value_is_exact_log_likelihood():
    program, _ = tiny_program("mixture")
    guide = AmortizedGuide(program, hidden_dim=16)
    loss = IWAEObjective(program, guide, num_particles=8)(*encoded(program))
    exact_mean = sum(r.log_prob for r in exact(program, QUESTIONS, ANSWERS).records) / len(ANSWERS)
    assert loss.item() == pytest.approx(-exact_mean, abs=1e-5)


def _gradients_of_one_draw(gradient: str, seed: int = 1):
    torch.manual_seed(0)
    imitator, guide = small_latent()
    torch.manual_seed(seed)
    loss = IWAEObjective(imitator, guide, num_particles=8, gradient=gradient)(*encoded(imitator))
    loss.backward()
    return loss.item(), *(torch.cat([p.grad.reshape(-1) for p in m.parameters()]) for m in (imitator, guide))


def test_dreg_changes_only_the_guide_gradient_on_the_same_draw():
    dreg, standard = _gradients_of_one_draw("dreg"), _gradients_of_one_draw("standard")
    assert dreg[0] == standard[0]  # the same bound
    assert torch.equal(dreg[1], standard[1])  # the same model gradient, exactly
    assert not torch.allclose(dreg[2], standard[2])  # another guide gradient


@pytest.mark.slow
def test_dreg_and_standard_gradients_agree_in_mean():
    """Both are unbiased for the gradient of the same bound: model and guide gradients, averaged over 200
    independent draws each, agree within their standard errors (Bonferroni over the parameters)."""
    imitator, guide = small_latent()
    q, a = encoded(imitator)
    params = list(imitator.parameters()) + list(guide.parameters())
    split = sum(p.numel() for p in imitator.parameters())
    draws = {
        g: gradient_draws(IWAEObjective(imitator, guide, 8, g), params, q, a, 200)
        for g in ("dreg", "standard")
    }
    for part in (slice(None, split), slice(split, None)):  # model, guide
        z = z_scores(draws["dreg"][:, part], draws["standard"][:, part])
        assert z.abs().max() < bonferroni(len(z)), z.abs().max()


def _variance_ratio(imitator, guide, q, a, num_particles: int, draws: int = 200) -> tuple[float, float]:
    """Total variance of the standard guide gradient over DReG's, and the standard error of its log (delta
    method on the per-draw squared deviations)."""
    params = list(guide.parameters())
    squared = {}
    for gradient in ("dreg", "standard"):
        rows = gradient_draws(IWAEObjective(imitator, guide, num_particles, gradient), params, q, a, draws)
        squared[gradient] = ((rows - rows.mean(0)) ** 2).sum(1)
    ratio = (squared["standard"].mean() / squared["dreg"].mean()).item()
    se_log = math.sqrt(sum((s.var() / len(s) / s.mean() ** 2).item() for s in squared.values()))
    return ratio, se_log


@pytest.mark.slow
def test_dreg_lowers_the_guide_gradient_variance():
    """With a guide that has started to fit (20 steps on the answers), the standard estimator keeps the noise of
    its score term while DReG's vanishes as q approaches the posterior (Tucker et al. 2019)."""
    imitator, guide = small_latent()
    q, a = encoded(imitator)
    optimizer = torch.optim.Adam(list(imitator.parameters()) + list(guide.parameters()), lr=1e-2)
    objective = IWAEObjective(imitator, guide, num_particles=8)
    for _ in range(20):
        optimizer.zero_grad()
        objective(q, a).backward()
        optimizer.step()
    ratio, se_log = _variance_ratio(imitator, guide, q, a, num_particles=8)
    print(f"guide gradient variance, standard / DReG at K=8: {ratio:.3g} (log se {se_log:.2f})")
    assert math.log(ratio) > 4 * se_log


@pytest.mark.parametrize("name, site", [("mixture", "style"), ("custom-care", "mood")])
@pytest.mark.parametrize("discrete", ["enumerate", "vimco"])
def test_discrete_guide_sites_receive_gradient(name, site, discrete):
    program, _ = tiny_program(name)
    guide = AmortizedGuide(program, hidden_dim=16)
    q, a = encoded(program)
    head = guide.heads[site].weight
    # reference: Pyro's RenyiELBO(alpha=0) (the IWAE bound) leaves the discrete head with exactly zero gradient
    RenyiELBO(alpha=0, num_particles=8, vectorize_particles=True, max_plate_nesting=1).loss_and_grads(
        program.model, guide, q, a
    )
    assert head.grad is not None and torch.count_nonzero(head.grad) == 0
    head.grad = None
    IWAEObjective(program, guide, num_particles=8, discrete=discrete)(q, a).backward()
    assert head.grad is not None and head.grad.abs().sum() > 0


def _enumerated_joint(program, guide, q, a):
    """``(log p(answer, d), log q(d))``, each ``[S, B]``, for every value d of an all-discrete program."""
    values = enumerated_values(guide.sites)
    count = next(iter(values.values())).shape[0]
    with pyro.plate("particles", count, dim=-2):
        guide_trace = poutine.trace(poutine.condition(guide, data=values)).get_trace(q, a)
        model_trace = poutine.trace(poutine.condition(program.model, data=values)).get_trace(q, a)
    shape = torch.Size([count, len(a)])
    return site_sum(model_trace, shape), site_sum(guide_trace, shape)


def test_enumerated_gradients_are_exact():
    """All-discrete program: the model gets the gradient of the exact log-likelihood, the guide that of the
    inclusive KL to the exact posterior (no Monte Carlo at all)."""
    program, _ = tiny_program("mixture")
    guide = AmortizedGuide(program, hidden_dim=16)
    q, a = encoded(program)
    params = list(program.parameters()) + list(guide.parameters())
    got = gradient_draws(IWAEObjective(program, guide, num_particles=8), params, q, a, 1)[0]
    log_joint, log_q = _enumerated_joint(program, guide, q, a)
    posterior = torch.softmax(log_joint.detach(), 0)
    reference = -torch.logsumexp(log_joint, 0).mean() - (posterior * log_q).sum(0).mean()
    expected = gradient_draws(lambda *_: reference, params, q, a, 1)[0]
    assert torch.allclose(got, expected, atol=1e-6, rtol=1e-4)


@pytest.mark.slow
def test_vimco_is_unbiased_for_the_exact_iwae_gradient():
    """All-discrete program with K=3 particles: the IWAE bound is a finite sum over the 3^3 particle tuples, so
    its gradient is known exactly; VIMCO's average over 600 draws matches it within its standard errors."""
    torch.manual_seed(0)
    program = make_imitator("mixture", codec=AlphabetCodec("ab"), max_length=3, hidden_dim=16, num_styles=3)
    guide = AmortizedGuide(program, hidden_dim=16)
    q, a = encoded(program, QUESTIONS[:2], ANSWERS[:2])
    params = list(program.parameters()) + list(guide.parameters())
    log_joint, log_q = _enumerated_joint(program, guide, q, a)
    log_w, particles = log_joint - log_q, 3
    tuples = torch.tensor(list(itertools.product(range(log_w.shape[0]), repeat=particles)))  # [27, K]
    bound = (log_q[tuples].sum(1).exp() * (torch.logsumexp(log_w[tuples], 1) - math.log(particles))).sum(0)
    expected = gradient_draws(lambda *_: -bound.mean(), params, q, a, 1)[0]
    draws = gradient_draws(IWAEObjective(program, guide, particles, discrete="vimco"), params, q, a, 600)
    stderr = draws.std(0) / math.sqrt(len(draws))
    moving = stderr > 0
    assert torch.allclose(expected[~moving], torch.zeros(()).double(), atol=1e-6)
    z = (draws.mean(0) - expected)[moving] / stderr[moving]
    assert z.abs().max() < bonferroni(len(z)), z.abs().max()


def test_training_improves_heldout_log_prob():
    codec = AlphabetCodec("0123456789+-=")
    human = make_human("arithmetic", codec, max_length=12)
    (q, a), (hq, ha) = human.draw(1000, seed=0), human.draw(100, seed=1)
    imitator = LatentSeq2Seq(codec, max_length=12, hidden_dim=32, latent_dim=2)
    guide = AmortizedGuide(imitator, hidden_dim=16)

    def heldout():
        records = importance(imitator, hq, ha, guide=guide, num_particles=64).records
        return torch.tensor([r.log_prob for r in records]), torch.tensor([r.stderr for r in records])

    before, before_se = heldout()
    objective = IWAEObjective(imitator, guide, num_particles=8)
    config = TrainConfig(
        steps=150, batch_size=32, learning_rate=1e-2, eval_every=150, eval_answers=1, progress=False
    )
    report = train(imitator, q, a, guide=guide, config=config, objective=objective)
    after, after_se = heldout()
    gain = after - before  # paired over held-out answers, plus each estimate's own Monte Carlo error
    stderr = math.sqrt(gain.var() / len(gain) + (before_se**2 + after_se**2).sum() / len(gain) ** 2)
    print(
        f"held-out log p: {before.mean():.2f} -> {after.mean():.2f} (gain {gain.mean():.2f} +- {stderr:.2f})"
    )
    assert gain.mean() > 5 * stderr
    assert report.history[-1]["iwae"] == objective.last["iwae"]


def test_without_latents_it_is_the_exact_log_likelihood():
    program = make_imitator("seq2seq", codec=AlphabetCodec("ab"), max_length=3, hidden_dim=16)
    loss = IWAEObjective(program, None)(*encoded(program))
    exact_mean = sum(r.log_prob for r in exact(program, QUESTIONS, ANSWERS).records) / len(ANSWERS)
    assert loss.item() == pytest.approx(-exact_mean, abs=1e-5)
    imitator, guide = small_latent()
    with pytest.raises(RetroError, match="does not propose the latent sites"):
        IWAEObjective(imitator, None)(*encoded(imitator))


def test_settings_are_checked():
    imitator, guide = small_latent()
    with pytest.raises(RetroError, match="unknown gradient"):
        IWAEObjective(imitator, guide, gradient="reinforce")
    with pytest.raises(RetroError, match="unknown discrete mode"):
        IWAEObjective(imitator, guide, discrete="sample")
    with pytest.raises(RetroError, match="positive integer"):
        IWAEObjective(imitator, guide, num_particles=0)
    program, _ = tiny_program("mixture")
    with pytest.raises(RetroError, match="VIMCO needs num_particles >= 2"):
        IWAEObjective(program, AmortizedGuide(program, hidden_dim=16), num_particles=1, discrete="vimco")
