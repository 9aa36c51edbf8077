"""One contract test per property, parametrized over every built-in imitator, every human and a custom imitator."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from contract_checks import assert_particles_match_one_at_a_time
from pyro import poutine

from programs import PROGRAM_NAMES, CareImitator, tiny_program
from retro.errors import RetroError
from retro.humans import HUMANS
from retro.inference import AmortizedGuide, elbo, exact, importance, latent_sites
from retro.inference.exact import exact_log_prob
from retro.program import ANSWER_SITE
from retro.text import StringBatch

HUMANS_AND_IMITATORS_WITH_DISCRETE_OR_NO_LATENTS = (
    "arithmetic",
    "numbers",
    "mixture",
    "mixture[attention]",
    "ensemble",
    "seq2seq",
    "seq2seq[attention]",
)


def all_strings(codec, max_length):
    symbols = range(codec.num_symbols)
    rows = [list(s) for n in range(max_length + 1) for s in itertools.product(symbols, repeat=n)]
    tokens = torch.full((len(rows), max_length + 1), codec.eos)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return tokens


def answer_log_prob(program, questions, tokens, condition=None):
    """log p(answer | question, latents fixed by ``condition``) for every string, as [num_strings, B]."""
    batch = program.encode_questions(questions)
    model = poutine.condition(program.model, data=condition or {})
    trace = poutine.trace(model).get_trace(batch, StringBatch.from_tokens(tokens[:1], program.codec.eos))
    fn = trace.nodes[ANSWER_SITE]["fn"]
    return fn.log_prob(tokens[:, None, :])


@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_normalized_for_fixed_latents(name, float64):
    program, questions = tiny_program(name)
    program.double()
    tokens = all_strings(program.codec, program.max_length)
    sites = latent_sites(program, questions[:1], [""])
    condition = {
        n: torch.tensor(1 if s.discrete else 0.7).expand((len(questions),) + s.event_shape)
        for n, s in sites.items()
    }
    total = answer_log_prob(program, questions, tokens, condition).exp().sum(0)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6), total


@pytest.mark.parametrize("name", HUMANS_AND_IMITATORS_WITH_DISCRETE_OR_NO_LATENTS)
def test_normalized_marginally(name, float64):
    """Enumerable programs: exact marginal log p summed over every string is 1."""
    program, questions = tiny_program(name)
    program.double()
    tokens = all_strings(program.codec, program.max_length)
    for question in questions:
        answers = StringBatch.from_tokens(tokens, program.codec.eos)
        q = program.encode_questions([question] * len(tokens))
        sites = latent_sites(program, [question], [""])
        total = exact_log_prob(program, q, answers, sites).exp().sum()
        assert abs(total.item() - 1.0) < 1e-6


@pytest.mark.parametrize("name", ["typist", "latent"])
def test_normalized_marginally_by_quadrature(name, float64):
    program, questions = tiny_program(name)
    program.double()
    if name == "latent":
        program = type(program)(
            codec=program.codec, max_length=program.max_length, hidden_dim=16, latent_dim=1
        ).double()
    tokens = all_strings(program.codec, 2)
    answers = StringBatch.from_tokens(tokens, program.codec.eos)
    program.max_length = 2
    q = program.encode_questions([questions[0]] * len(tokens))
    total = exact_log_prob(program, q, answers, latent_sites(program, questions[:1], [""])).exp().sum()
    assert abs(total.item() - 1.0) < 1e-6


@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_particles_by_answers_is_one_vectorized_call(name, float64):
    """The log weights of K particles x B answers equal those computed one particle at a time."""
    program, questions = tiny_program(name)
    program.double()
    answers = [s[0] for s in program.sample(questions)]
    assert_particles_match_one_at_a_time(program, questions, answers)


@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_sample_frequencies_match_log_prob(name, float64):
    """Samples from the program land on strings with the frequencies exp(log p) says (4-sigma binomial bands)."""
    program, questions = tiny_program(name, max_length=2)
    program.double()
    n = 4000
    samples = program.sample(questions[:1], num_samples=n)[0]
    counts = {s: samples.count(s) for s in set(samples)}
    top = sorted(counts, key=counts.get, reverse=True)[:5]
    estimates = (
        exact(program, questions[:1] * len(top), top).records if _has_exact(program, questions) else None
    )
    if estimates is None:  # several continuous latents: integrate them out with prior particles
        estimates = importance(
            program, questions[:1] * len(top), top, proposal="prior", num_particles=3000
        ).records
    for answer, estimate in zip(top, estimates):
        p = math.exp(estimate.log_prob)
        # binomial sampling error of the frequency plus the estimator's own error (delta method)
        sigma = math.sqrt(p * (1 - p) / n + (p * estimate.stderr) ** 2)
        assert abs(counts[answer] / n - p) <= 4 * sigma, (answer, counts[answer] / n, p, sigma)


def _has_exact(program, questions):
    sites = latent_sites(program, questions[:1], [""])
    return (
        all(s.discrete for s in sites.values())
        or len(sites) == 1
        and math.prod(next(iter(sites.values())).event_shape) == 1
    )


@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_every_estimator_runs(name):
    program, questions = tiny_program(name)
    answers = [s[0] for s in program.sample(questions)]
    guide = AmortizedGuide(program, hidden_dim=8, example=(questions[:1], answers[:1]))
    results = [
        importance(program, questions, answers, guide=guide, proposal=p, num_particles=30).records
        for p in ("guide", "prior", "mixture")
    ]
    results.append(elbo(program, questions, answers, guide=guide, num_particles=30).records)
    if _has_exact(program, questions):
        results.append(exact(program, questions, answers).records)
    for records in results:
        assert len(records) == len(answers)
        for record in records:
            assert record.answer in answers and record.log_prob <= 1e-9
            assert record.kind in ("exact", "lower_bound", "estimate")


@pytest.mark.parametrize("name", [n for n in PROGRAM_NAMES if n not in HUMANS])
def test_save_load_round_trip(name, tmp_path):
    from retro.inference.trained import load_trained, save_trained

    program, questions = tiny_program(name)
    if name == CareImitator.name:
        pytest.skip("custom imitators are saved with their own code; the registry holds the built-ins")
    guide = AmortizedGuide(program, hidden_dim=8)
    save_trained(tmp_path / "ckpt", program, guide, {"note": "test"})
    loaded = load_trained(tmp_path / "ckpt")
    answers = [program.codec.decode([0]), program.codec.decode([1, 0])]
    torch.manual_seed(0)
    before = importance(
        program, questions, answers, guide=guide, proposal="mixture", num_particles=10
    ).records
    torch.manual_seed(0)
    after = importance(
        loaded.imitator, questions, answers, guide=loaded.guide, proposal="mixture", num_particles=10
    ).records
    assert [r.log_prob for r in before] == [r.log_prob for r in after]
    assert loaded.info == {"note": "test"}


def test_answer_distribution_takes_a_summary_unless_the_decoder_attends():
    """Subclasses written against the summary-tensor API keep working; an attention decoder asks for encode()."""
    plain, questions = tiny_program("latent")
    batch = plain.encode_questions(questions)
    summary = plain.encode(batch).summary
    assert plain.answer_distribution(summary, torch.zeros(2, 8)).batch_shape == (2,)
    attending, _ = tiny_program("latent[attention]")
    with pytest.raises(RetroError, match=r"pass self.encode\(questions\)"):
        attending.answer_distribution(attending.encode(batch).summary, torch.zeros(2, 8))
