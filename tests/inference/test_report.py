"""Judging an imitator in absolute terms: typicality, classifier two-sample test, the report, temperature curves.

The null cases use the human itself as the imitator (its answers are exactly the human's law), so the tests'
p-values must be uniform and accuracies at chance, within binomial / uniform standard errors; the alternative
cases use the same human at another temperature, which must be caught.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy import stats

from retro.discriminators import NeuralDiscriminator
from retro.errors import RetroError
from retro.humans import make_human
from retro.inference.report import imitator_report, plot_report
from retro.inference.sampling import sample_answers
from retro.inference.temperature import temperature_curve
from retro.inference.two_sample import binomial_summary, classifier_two_sample_test
from retro.inference.typicality import typicality_test
from retro.tempering import tempered
from retro.text import AlphabetCodec
from retro.verifiers import verifier_from_spec

CODEC = AlphabetCodec("0123456789+-=")


@pytest.fixture(scope="module")
def human():
    return make_human("arithmetic", CODEC, max_length=12)


@pytest.fixture(scope="module")
def heldout(human):
    return human.draw(300, seed=3)


def test_typicality_p_values_are_uniform_for_the_human_itself(human, heldout):
    result = typicality_test(human, *heldout, num_samples=30)
    p = torch.tensor(result.p_values, dtype=torch.float64)
    # Uniform(0, 1): mean 1/2 with standard error sqrt(1/12 / n); Kolmogorov-Smirnov as a second check.
    assert abs(p.mean().item() - 0.5) < 4 * math.sqrt(1 / 12 / len(p))
    assert stats.kstest(p.numpy(), "uniform").pvalue > 1e-3
    assert result.overall_p_value > 1e-3


def test_typicality_catches_a_tempered_human(human, heldout):
    result = typicality_test(tempered(human, 3.0), *heldout, num_samples=30)
    # Under the null the overall p-value is uniform: below 1e-4 only once in 10,000 runs.
    assert result.overall_p_value < 1e-4
    assert (
        result.human_log_prob_mean > result.sample_log_prob_mean
    )  # its own answers are noisier than the human's


def _pairs(program, questions, answers, imitator):
    q = program.encode_questions(questions)
    return (q, program.encode_answers(answers)), (q, sample_answers(imitator, q, 1)[1])


@pytest.mark.slow
def test_two_sample_test_is_at_chance_for_the_human_and_catches_a_tempered_one(human, heldout):
    def make():
        return NeuralDiscriminator(CODEC, 12, hidden_dim=32)

    same = classifier_two_sample_test(*_pairs(human, *heldout, human), make, steps=150)
    # 300 test pairs at chance: accuracy within 4 binomial standard errors of 0.5.
    assert abs(same.accuracy - 0.5) < 4 * math.sqrt(0.25 / same.total)
    assert same.ci_low <= 0.5 <= same.ci_high or same.p_value > 1e-4
    hot = classifier_two_sample_test(*_pairs(human, *heldout, tempered(human, 3.0)), make, steps=150)
    assert hot.accuracy > 0.6 and hot.p_value < 1e-3


def test_binomial_summary_matches_clopper_pearson():
    result = binomial_summary(60, 100)
    interval = stats.binomtest(60, 100).proportion_ci(0.95, method="exact")
    assert result.ci_low == pytest.approx(interval.low) and result.ci_high == pytest.approx(interval.high)
    assert result.p_value == pytest.approx(stats.binomtest(60, 100, 0.5, alternative="greater").pvalue)
    assert binomial_summary(0, 10).ci_low == 0.0 and binomial_summary(10, 10).ci_high == 1.0


def test_report_with_verifier_and_figure(human, heldout, tmp_path):
    questions, answers = heldout[0][:80], heldout[1][:80]
    report = imitator_report(
        human,
        questions,
        answers,
        verifier=verifier_from_spec("arithmetic"),
        num_samples=10,
        num_particles=20,
        discriminator_steps=30,
    )
    data = report.to_dict()
    json.dumps(data)  # JSON-able
    assert data["num_answers"] == 80 and data["verifier"] == "arithmetic"
    # The human's answers pass exactly when they carry the right value (terse or verbose, no typo).
    expected = sum(verifier_from_spec("arithmetic").check(questions, answers)) / 80
    assert data["human_verifier_pass_rate"] == expected
    assert 0 <= data["verifier_pass_rate"] <= 1 and 0 <= data["two_sample"]["accuracy"] <= 1
    path = tmp_path / "report.png"
    plot_report(report, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(RetroError, match="at least 4"):
        imitator_report(human, questions[:2], answers[:2])


def test_temperature_curve_trades_quality_for_coverage(human, heldout):
    questions, answers = heldout[0][:100], heldout[1][:100]
    points = temperature_curve(human, human, questions, answers, (0.5, 1.0, 2.0), num_samples=10)
    quality = [p.quality for p in points]
    coverage = [p.coverage for p in points]
    # Colder samples are more human-plausible; the human's own law (T = 1) covers its answers best.
    assert quality[0] > quality[1] > quality[2]
    assert coverage[1] > coverage[0] and coverage[1] > coverage[2]
    assert points[0].distinct < points[2].distinct
