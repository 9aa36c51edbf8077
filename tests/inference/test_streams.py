"""Keyed random streams: exact against a pure-Python reference, uniform, drawn by inverse CDF, and estimates that do
not depend on how the work is cut (batch, max_rows, sub-batches keyed by their answers' indices)."""

import json
import math
import shlex

import pyro
import pyro.distributions as dist
import pytest
import torch

from retro.cli import main
from retro.errors import RetroError
from retro.humans import make_human
from retro.inference import AmortizedGuide, ais, elbo, importance
from retro.inference.streams import KeyedSampling, keyed_uniforms
from retro.models import LatentSeq2Seq

M = 0xFFFFFFFF


def _mix(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M
    x ^= x >> 15
    x = (x * 0x846CA68B) & M
    return x ^ (x >> 16)


def _absorb(state: int, value: int, wide: bool) -> int:
    state = _mix(state ^ (value & M))
    return _mix(state ^ ((value >> 32) & M) ^ 0x9E3779B9) if wide else state


def _reference_uniform(seed: int, answer: int, particle: int, site: int, element: int) -> float:
    state = _absorb(_absorb(0x6A09E667, seed, True), site, True)
    state = _absorb(_absorb(state, answer, False), particle, False)
    key = state ^ ((element * 0x9E3779B9) & M)
    high, low = _mix(key ^ 0x243F6A88) >> 5, _mix(key ^ 0x85A308D3) >> 6
    return (high * 2**26 + low + 0.5) / 2**53


def test_uniforms_match_the_integer_reference_and_are_uniform():
    seed, site = 2**40 + 12345, 0xDEADBEEF
    answers, particles = torch.tensor([0, 7, 4_000_000_000]), torch.tensor([0, 1, 999])
    u = keyed_uniforms(seed, answers, particles, site, 3)
    for k, particle in enumerate(particles.tolist()):
        for b, answer in enumerate(answers.tolist()):
            for e in range(3):
                assert u[k, b, e].item() == _reference_uniform(seed, answer, particle, site, e)
    u = keyed_uniforms(0, torch.arange(64), torch.arange(256), 1, 4).reshape(-1)  # n = 65,536
    n = len(u)
    assert len(u.unique()) == n and 0 < float(u.min()) and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 4 * math.sqrt(1 / 12 / n)
    assert abs(float((u - 0.5).square().mean()) - 1 / 12) < 4 * math.sqrt(
        1 / 180 / n
    )  # Var((u-1/2)^2) = 1/180
    grid = keyed_uniforms(0, torch.arange(64), torch.arange(256), 1, 2)  # neighbouring elements: uncorrelated
    z = (grid - 0.5) * math.sqrt(12)
    assert abs(float((z[..., 0] * z[..., 1]).mean())) < 4 / math.sqrt(z[..., 0].numel())
    counts = torch.bincount((u * 16).long(), minlength=16).double()  # 16 equal bins: chi-square, 15 dof
    assert float(((counts - n / 16) ** 2 / (n / 16)).sum()) < 15 + 4 * math.sqrt(30)


def _keyed_site(fn, particles=2000, answers=3):
    with KeyedSampling(5, torch.arange(answers), torch.arange(particles)):
        with pyro.plate("answers", answers, dim=-1), pyro.plate("particles", particles, dim=-2):
            return pyro.sample("x", fn)


def test_sites_are_drawn_by_inverse_cdf():
    n = 2000
    loc = torch.tensor([0.0, 1.0, -2.0], requires_grad=True)
    x = _keyed_site(dist.Normal(loc, 2.0), n)
    assert x.shape == (n, 3)
    assert torch.all((x.mean(0) - loc).abs() < 4 * 2.0 / math.sqrt(n))
    x.sum().backward()  # reparameterized: d x / d loc = 1
    assert torch.equal(loc.grad, torch.full((3,), float(n)))
    probs = torch.tensor([0.2, 0.5, 0.3])
    c = _keyed_site(dist.Categorical(probs), n)
    share = torch.stack([(c == i).double().mean(0) for i in range(3)], -1)
    assert torch.all((share - probs).abs() < 4 * torch.sqrt(probs * (1 - probs) / n))
    b = _keyed_site(dist.Bernoulli(0.3), n)
    assert torch.all((b.mean(0) - 0.3).abs() < 4 * math.sqrt(0.21 / n))
    v = _keyed_site(dist.Normal(torch.zeros(4), 1.0).to_event(1), n)
    assert v.shape == (n, 3, 4) and abs(float(v.std()) - 1) < 4 / math.sqrt(2 * v.numel())
    e = _keyed_site(dist.Exponential(torch.tensor(2.0)), n)  # any distribution with an icdf
    assert abs(float(e.mean()) - 0.5) < 4 * 0.5 / math.sqrt(e.numel())
    with pytest.raises(RetroError, match="Gamma has no inverse CDF"):
        _keyed_site(dist.Gamma(2.0, 1.0))
    with pytest.raises(RetroError, match="multivariate Dirichlet"):
        _keyed_site(dist.Dirichlet(torch.ones(3)))


def _log_probs(records):
    return torch.tensor([r.log_prob for r in records], dtype=torch.float64)


def _assert_cut_independent(run, num_answers):
    """``run(index, **kw)`` scores the answers at ``index``: the whole batch, another max_rows, and two disjoint
    sub-batches keyed by their indices give per-answer log p equal to 1e-10."""
    whole = _log_probs(run(slice(None)))
    assert torch.allclose(whole, _log_probs(run(slice(None), max_rows=37)), rtol=0, atol=1e-10)
    half = num_answers // 2
    parts = torch.cat([_log_probs(run(slice(0, half))), _log_probs(run(slice(half, None)))])
    assert torch.allclose(whole, parts, rtol=0, atol=1e-10)


def test_estimates_do_not_depend_on_how_the_work_is_cut(float64):
    human = make_human("typist").double()
    questions, answers = human.draw(16, seed=3)
    imitator = LatentSeq2Seq(max_length=12, hidden_dim=8, latent_dim=2).double()
    guide = AmortizedGuide(imitator, hidden_dim=8).double()
    ids = torch.arange(len(answers))

    def runner(estimator, program, **options):
        def run(index, **kw):
            return estimator(
                program, questions[index], answers[index], seed=11, answer_ids=ids[index], **options, **kw
            ).records

        return run

    _assert_cut_independent(runner(importance, human, proposal="prior", num_particles=20), len(answers))
    mixture = runner(importance, imitator, guide=guide, proposal="mixture", num_particles=9)
    _assert_cut_independent(mixture, len(answers))
    _assert_cut_independent(runner(elbo, imitator, guide=guide, num_particles=9), len(answers))
    _assert_cut_independent(runner(ais, human, num_particles=6, num_steps=4), len(answers))
    first = _log_probs(runner(importance, human, proposal="prior", num_particles=20)(slice(None)))
    other_seed = importance(human, questions, answers, proposal="prior", num_particles=20, seed=12).records
    assert not torch.equal(first, _log_probs(other_seed))


def test_retro_score_gives_the_same_records_whatever_max_rows(capsys):
    command = (
        "score --model human:typist --data human:typist --n 12 --seed 3 --method importance --proposal prior "
        "--particles 50 --format jsonl"
    )
    outputs = []
    for extra in ("", " --max-rows 100"):
        assert main(shlex.split(command + extra)) == 0
        outputs.append([json.loads(line) for line in capsys.readouterr().out.splitlines()])
    assert len(outputs[0]) == 12
    for a, b in zip(*outputs):
        assert abs(a["log_prob"] - b["log_prob"]) < 1e-5 and a["answer"] == b["answer"]
