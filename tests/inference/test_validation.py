"""No silent wrong numbers: wrong inputs and wrong guides are one-line errors; exact handles discrete latents
around a scalar Normal."""

import pytest
import torch
from pyro import poutine

from retro.errors import RetroError
from retro.humans import make_human
from retro.inference import AmortizedGuide, ais, elbo, estimate, exact, importance
from retro.inference.compare import compare
from retro.inference.psis import khat_threshold
from retro.models import LatentSeq2Seq
from tests.inference.test_ais import StyledTypist
from tests.programs import CareImitator


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("estimator", [importance, elbo, ais])
def test_the_model_as_its_own_guide_is_refused(estimator):
    imitator = LatentSeq2Seq(max_length=6, hidden_dim=8, latent_dim=2)
    with pytest.raises(RetroError, match="the guide is the model itself") as error:
        estimator(imitator, ["a"], ["b"], guide=imitator, num_particles=4)
    _one_line(error)


def test_a_guide_for_another_program_is_refused():
    imitator = LatentSeq2Seq(max_length=6, hidden_dim=8, latent_dim=2)
    other = AmortizedGuide(LatentSeq2Seq(max_length=6, hidden_dim=8, latent_dim=3), hidden_dim=8)
    with pytest.raises(RetroError, match="guide site 'z' is normal with event shape \\(3,\\)") as error:
        importance(imitator, ["a"], ["b"], guide=other, num_particles=4)
    _one_line(error)
    typist_guide = AmortizedGuide(make_human("typist"), hidden_dim=8)
    with pytest.raises(RetroError, match="are not the program's") as error:
        estimate("elbo", imitator, ["a"], ["b"], guide=typist_guide)
    _one_line(error)
    # a model (it has the answer site) wrapped so that it is not the same object
    with pytest.raises(RetroError, match="it is a model, not a guide"):
        ais(imitator, ["a"], ["b"], guide=LatentSeq2Seq(max_length=6, hidden_dim=8, latent_dim=2).model)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: importance(m, "3+4", "7"), "questions must be a list of strings, got one string '3\\+4'"),
        (lambda m: importance(m, ["1+1", "2+2"], ["2"]), "2 questions and 1 answers"),
        (lambda m: exact(m, [], []), "nothing to score"),
        (lambda m: ais(m, ["1+1"], [2]), "answers\\[0\\] must be a string, got int"),
        (
            lambda m: importance(m, ["1+1"], ["2"], num_particles=2.5),
            "num_particles must be a positive integer",
        ),
        (lambda m: elbo(m, ["1+1"], ["2"], num_particles=0), "num_particles must be a positive integer"),
        (
            lambda m: estimate("ais", m, ["1+1"], ["2"], num_particles=True),
            "num_particles must be a positive",
        ),
        (lambda m: importance(m, ["1+1"], ["2"], max_rows=0), "max_rows must be a positive integer"),
        (lambda m: importance(m, ["1+1"], ["2"], answer_ids=[0, 1]), "one answer id per answer"),
        (lambda m: m.sample("3+4"), "sample: questions must be a list of strings"),
        (lambda m: m.sample(["3+4"], num_samples=0), "num_samples must be a positive integer"),
        (lambda m: m.sample([]), "sample: no questions"),
    ],
)
def test_bad_inputs_are_one_line_errors(call, message):
    imitator = LatentSeq2Seq(max_length=6, hidden_dim=8, latent_dim=2)
    with pytest.raises(RetroError, match=message) as error:
        call(imitator)
    _one_line(error)


class FixedMood(CareImitator):
    """The custom imitator with its discrete mood fixed: one scalar Normal latent left."""

    def __init__(self, mood: int):
        super().__init__()
        self.fixed = mood

    def model(self, questions, answers=None):
        mood = torch.full((len(questions),), self.fixed, dtype=torch.long)
        return poutine.condition(super().model, data={"mood": mood})(questions, answers)


def test_exact_sums_discrete_latents_around_the_normal_quadrature(float64):
    torch.manual_seed(0)
    program = CareImitator().double()
    questions, answers = ["ab", "ba", "a"], ["b", "", "abba"]
    records, info = exact(program, questions, answers)
    assert info.method == "exact[quadrature]" and all(r.kind == "exact" for r in records)
    per_mood = []
    for mood in (0, 1):
        fixed = FixedMood(mood).double()
        fixed.load_state_dict(program.state_dict())
        per_mood.append(torch.tensor([r.log_prob for r in exact(fixed, questions, answers).records]))
    expected = torch.logsumexp(torch.stack(per_mood), 0)  # the conditioned mood's log p(mood) is in each term
    assert torch.allclose(torch.tensor([r.log_prob for r in records]), expected, atol=1e-10)
    with pytest.raises(RetroError, match="depends on a discrete latent"):
        exact(StyledTypist(), ["hello"], ["helo"])


def test_compare_rows_report_khat_and_ess_per_row():
    human = make_human("typist")
    questions, answers = human.draw(12, seed=2)
    result = compare(human, questions, answers, ["importance[prior]"], [3, 40])
    for row in result.rows:
        records = result.estimates[(row.method, row.budget)]
        assert row.ess_min == min(r.ess for r in records)
        assert row.khat_over_threshold == sum(r.khat > khat_threshold(row.budget) for r in records)
        assert row.seconds > 0
