"""Adversarial training: the contract over every built-in imitator and a custom one, the score-function
gradient, and a game that must move a learnable answer law toward the human's."""

from __future__ import annotations

import math

import pytest
import torch

from programs import CareImitator
from retro.discriminators import NeuralDiscriminator, VerifierDiscriminator
from retro.errors import RetroError
from retro.finite import FiniteStringDistribution
from retro.humans import make_human
from retro.inference import AmortizedGuide, exact, latent_sites
from retro.inference.adversarial import AdversarialObjective
from retro.inference.sampling import sample_with_log_prob
from retro.inference.train import TrainConfig, train
from retro.models import IMITATORS, make_imitator
from retro.program import StringProgram
from retro.text import AlphabetCodec, StringBatch
from retro.verifiers import verifier_from_spec

CODEC = AlphabetCodec("0123456789+-=")


def _imitator(name):
    if name == CareImitator.name:
        return CareImitator(CODEC, max_length=8)
    return make_imitator(name, codec=CODEC, max_length=8, hidden_dim=16)


@pytest.mark.parametrize("name", [*sorted(IMITATORS), CareImitator.name])
@pytest.mark.parametrize("discriminator", ["neural", "neural+verifier", "verifier"])
def test_adversarial_trainer_runs_over_every_imitator(name, discriminator):
    human = make_human("arithmetic", CODEC, max_length=8)
    questions, answers = human.draw(64, seed=0)
    imitator = _imitator(name)
    guide = AmortizedGuide(imitator, hidden_dim=16) if latent_sites(imitator) else None
    verifier = verifier_from_spec("arithmetic")
    disc = (
        VerifierDiscriminator(verifier, CODEC)
        if discriminator == "verifier"
        else NeuralDiscriminator(CODEC, 8, 16, verifier if "+" in discriminator else None)
    )
    before = {k: v.clone() for k, v in imitator.state_dict().items()}
    guide_before = {k: v.clone() for k, v in guide.state_dict().items()} if guide is not None else {}
    objective = AdversarialObjective(imitator, disc, guide, samples_per_question=2)
    config = TrainConfig(
        steps=3, batch_size=16, eval_every=3, eval_particles=4, eval_answers=8, progress=False
    )
    report = train(
        imitator, questions, answers, guide, (questions[:8], answers[:8]), config, objective=objective
    )
    row = report.history[-1]
    assert (
        math.isfinite(row["loss"]) and math.isfinite(row["reward"]) and math.isfinite(row["heldout_log_prob"])
    )
    assert ("discriminator_loss" in row) == (discriminator != "verifier")
    if (
        discriminator != "verifier"
    ):  # a verifier's reward can be constant (every sample fails): no signal then
        assert any(not torch.equal(before[k], v) for k, v in imitator.state_dict().items())
    if guide is not None:  # the guide is fitted by the ELBO on its own, even in a purely adversarial game
        assert any(not torch.equal(guide_before[k], v) for k, v in guide.state_dict().items())


def test_sampled_log_prob_is_the_programs_own_log_prob(float64):
    """The score function uses log p of the sampled answer; for a program without latents it is the exact one."""
    imitator = make_imitator("seq2seq", codec=CODEC, max_length=8, hidden_dim=16).double()
    questions = ["1+2", "13-4", "7+7"]
    answers, log_prob = sample_with_log_prob(imitator, imitator.encode_questions(questions))
    texts = answers.to_strings(CODEC)
    expected = torch.tensor(
        [r.log_prob for r in exact(imitator, questions, texts).records], dtype=torch.float64
    )
    assert torch.allclose(log_prob.detach(), expected, atol=1e-9)
    assert log_prob.requires_grad  # the gradient flows into the program's parameters


class LearnableChoice(StringProgram):
    """Answers with one of four fixed strings, with learnable probabilities (a minimal generator)."""

    def __init__(self, choices):
        super().__init__(CODEC, max_length=4)
        self.logits = torch.nn.Parameter(torch.zeros(len(choices)))
        tokens = StringBatch.from_strings(choices, CODEC, 4).tokens
        self.register_buffer(
            "choices", torch.nn.functional.pad(tokens, (0, 5 - tokens.shape[1]), value=CODEC.eos)
        )

    def probs(self):
        return self.logits.softmax(0)

    def model(self, questions, answers=None):
        n = len(questions)
        dist = FiniteStringDistribution(
            self.choices.expand(n, -1, -1), self.logits.log_softmax(0).expand(n, -1), CODEC.eos
        )
        with self.answers_plate(questions):
            return self.observe(dist, answers)


def test_adversarial_game_moves_the_answer_law_toward_the_human():
    """A human answers "1" with probability 0.7 and "2", "3", "4" with 0.1 each; a generator starting uniform,
    trained only against a neural discriminator, must end near that law: total variation from 0.45 to below 0.1
    (five seeds gave 0.006-0.028; the empirical law of 2000 answers alone is about 0.01 off)."""
    choices = ["1", "2", "3", "4"]
    target = torch.tensor([0.7, 0.1, 0.1, 0.1])
    generator = LearnableChoice(choices)
    torch.manual_seed(0)
    index = torch.multinomial(target, 2000, replacement=True)
    answers = [choices[i] for i in index]
    questions = ["="] * len(answers)
    tv_before = 0.5 * (generator.probs() - target).abs().sum().item()
    objective = AdversarialObjective(generator, NeuralDiscriminator(CODEC, 4, 16), discriminator_lr=3e-3)
    config = TrainConfig(steps=300, batch_size=64, learning_rate=1e-2, eval_every=300, progress=False)
    train(generator, questions, answers, config=config, objective=objective)
    tv_after = 0.5 * (generator.probs() - target).abs().sum().item()
    assert tv_before == pytest.approx(0.45)
    assert tv_after < 0.1, (tv_after, generator.probs().tolist())


def test_bad_settings_are_clear():
    imitator = _imitator("seq2seq")
    with pytest.raises(RetroError, match="samples_per_question must be a positive integer"):
        AdversarialObjective(imitator, NeuralDiscriminator(CODEC, 8, 16), samples_per_question=0)
