"""One report judging an imitator in absolute terms: retrodiction, typicality, a two-sample test, a verifier.

* held-out log p with its standard error (importance sampling with the guide, or the prior; exact where the
  latents can be summed out);
* the typicality test (:mod:`.typicality`): is the human's answer as probable as the imitator's own?
* the classifier two-sample test (:mod:`.two_sample`): can a discriminator trained on half the pairs tell the
  human's answers from the imitator's on the other half? (50% accuracy: no);
* with a verifier: the pass rate of the imitator's answers next to the human's, and the accuracy of the verifier
  used alone as a discriminator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from retro.discriminators import NeuralDiscriminator, VerifierDiscriminator
from retro.errors import RetroError
from retro.inference.importance import importance
from retro.inference.log_weights import preferred_proposal
from retro.inference.results import summarize
from retro.inference.sampling import sample_answers
from retro.inference.two_sample import (
    TwoSampleResult,
    binomial_summary,
    classifier_two_sample_test,
    discriminator_accuracy,
)
from retro.inference.typicality import TypicalityResult, typicality_test
from retro.program import StringProgram
from retro.verifiers import Verifier

__all__ = ["ImitatorReport", "imitator_report", "plot_report"]


@dataclass(frozen=True)
class ImitatorReport:
    num_answers: int
    log_prob_mean: float
    log_prob_stderr: float
    log_prob_method: str
    typicality: TypicalityResult
    two_sample: TwoSampleResult
    verifier: str | None = None
    verifier_pass_rate: float | None = None  # the imitator's answers
    human_verifier_pass_rate: float | None = None
    verifier_two_sample: TwoSampleResult | None = None

    def to_dict(self, details: bool = False) -> dict[str, Any]:
        return {
            "num_answers": self.num_answers,
            "log_prob_mean": self.log_prob_mean,
            "log_prob_stderr": self.log_prob_stderr,
            "log_prob_method": self.log_prob_method,
            "typicality": self.typicality.to_dict(details),
            "two_sample": self.two_sample.to_dict(),
            "verifier": self.verifier,
            "verifier_pass_rate": self.verifier_pass_rate,
            "human_verifier_pass_rate": self.human_verifier_pass_rate,
            "verifier_two_sample": self.verifier_two_sample.to_dict() if self.verifier_two_sample else None,
        }


def imitator_report(
    program: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    guide=None,
    verifier: Verifier | None = None,
    num_samples: int = 50,
    num_particles: int = 500,
    discriminator_steps: int = 300,
    seed: int = 0,
    progress: bool = False,
) -> ImitatorReport:
    """Judge ``program`` on held-out human pairs (see the module docstring).

    Args:
        num_samples: imitator answers per question for the typicality test.
        num_particles: importance particles per log p estimate (report and typicality).
        discriminator_steps: training steps of the two-sample test's discriminator.
    """
    if len(questions) < 4 or len(questions) != len(answers):
        raise RetroError(
            f"report: need as many questions as answers, at least 4; got {len(questions)}, {len(answers)}"
        )
    torch.manual_seed(seed)
    questions, answers = list(questions), list(answers)
    proposal = preferred_proposal(guide)
    records = importance(
        program, questions, answers, guide=guide, proposal=proposal, num_particles=num_particles
    )
    summary = summarize(records)
    typicality = typicality_test(program, questions, answers, guide, num_samples, min(num_particles, 100))
    q_batch, a_batch = program.encode_questions(questions), program.encode_answers(answers)
    _, fake = sample_answers(program, q_batch, 1)
    human, imitator = (q_batch, a_batch), (q_batch, fake)
    codec, max_length = program.codec, program.max_length
    two_sample = classifier_two_sample_test(
        human,
        imitator,
        lambda: NeuralDiscriminator(
            codec, max_length, verifier=verifier, question_codec=program.question_codec
        ).to(program.device),
        steps=discriminator_steps,
        seed=seed,
        progress=progress,
    )
    extra: dict[str, Any] = {}
    if verifier is not None:
        passed = verifier.check(questions, answers)
        passed_fake = verifier.check(questions, fake.to_strings(codec))
        extra = {
            "verifier": verifier.name,
            "verifier_pass_rate": sum(passed_fake) / len(passed_fake),
            "human_verifier_pass_rate": sum(passed) / len(passed),
            "verifier_two_sample": binomial_summary(
                *discriminator_accuracy(
                    VerifierDiscriminator(verifier, codec, program.question_codec), human, imitator
                )
            ),
        }
    return ImitatorReport(
        len(answers), summary.log_prob_mean, summary.stderr, summary.method, typicality, two_sample, **extra
    )


def plot_report(report: ImitatorReport, path, title: str = "imitator report") -> None:
    """Save a three-panel PNG: human vs imitator log p, typicality p-values, two-sample accuracies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    samples = np.array(report.typicality.sample_log_probs).ravel()
    human = np.array(report.typicality.human_log_probs)
    finite = np.concatenate([samples, human])
    finite = finite[np.isfinite(finite)]
    bins = np.linspace(finite.min(), finite.max(), 30) if len(finite) and np.ptp(finite) > 0 else 10
    axes[0].hist(
        samples[np.isfinite(samples)], bins=bins, density=True, alpha=0.6, label="imitator's answers"
    )
    axes[0].hist(human[np.isfinite(human)], bins=bins, density=True, alpha=0.6, label="human answers")
    axes[0].set(xlabel="log p under the imitator (nats)", ylabel="density", title="typicality")
    axes[0].legend(fontsize=8)
    axes[1].hist(report.typicality.p_values, bins=np.linspace(0, 1, 11), color="C2")
    axes[1].set(
        xlabel="per-question p-value",
        ylabel="questions",
        title=f"p-values (uniform if typical); Fisher p = {report.typicality.overall_p_value:.3g}",
    )
    bars = [("neural C2ST", report.two_sample)]
    if report.verifier_two_sample is not None:
        bars.append(("verifier", report.verifier_two_sample))
    names = [name for name, _ in bars]
    accuracy = np.array([r.accuracy for _, r in bars])
    errors = np.array([[r.accuracy - r.ci_low for _, r in bars], [r.ci_high - r.accuracy for _, r in bars]])
    axes[2].bar(names, accuracy, yerr=errors, capsize=6, color=["C0", "C3"][: len(bars)])
    axes[2].axhline(0.5, color="black", linewidth=0.8, linestyle="--")
    axes[2].set(ylim=(0, 1), ylabel="held-out accuracy", title="two-sample tests (0.5: indistinguishable)")
    fig.suptitle(f"{title}: log p {report.log_prob_mean:.3f} ± {report.log_prob_stderr:.3f} nats per answer")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
