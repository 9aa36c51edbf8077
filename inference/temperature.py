"""Quality-diversity curves over sampling temperature (Caccia et al. 2020), measured against a known human.

At each temperature T the imitator (:func:`~retro.tempering.tempered`) is judged two ways:

* **quality**: the mean log p, *under the human*, of the imitator's own answers (how human-plausible its samples
  are; higher at low T, when it keeps to its most likely answers);
* **coverage**: the mean log p, *under the tempered imitator*, of the human's answers (retrodiction: how much of
  what the human does it still allows; it falls when T moves away from what fits the human).

Caccia et al. found that a maximum-likelihood model swept over T traces a curve that dominates text GANs'; with a
synthetic human both axes are exact (or estimated with standard errors) instead of proxies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from retro.errors import RetroError
from retro.inference.sampling import sample_answers
from retro.inference.sites import latent_sites
from retro.inference.typicality import batch_log_prob
from retro.program import StringProgram
from retro.tempering import tempered

__all__ = ["TemperaturePoint", "temperature_curve"]


@dataclass(frozen=True)
class TemperaturePoint:
    temperature: float
    quality: float  # mean log p_human(imitator's answers)
    coverage: float  # mean log p_imitator(human answers)
    distinct: float  # share of distinct answers among the samples of a question, averaged

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def temperature_curve(
    program: StringProgram,
    human: StringProgram,
    questions: Sequence[str],
    answers: Sequence[str],
    temperatures: Sequence[float] = (0.5, 0.7, 1.0, 1.5),
    guide=None,
    num_samples: int = 10,
    num_particles: int = 100,
) -> list[TemperaturePoint]:
    """One point per temperature (see the module docstring); ``human`` must score answers (exactly, ideally)."""
    if not answers or len(questions) != len(answers):
        raise RetroError(
            f"temperature curve: need as many questions as answers (>0), got {len(questions)}, {len(answers)}"
        )
    if program.codec != human.codec or program.question_codec != human.question_codec:
        raise RetroError("temperature curve: the imitator and the human must share their codecs")
    q_batch, a_batch = program.encode_questions(questions), program.encode_answers(answers)
    model_sites = latent_sites(program, questions[:1], answers[:1])
    human_sites = latent_sites(human, questions[:1], answers[:1])
    points = []
    for temperature in temperatures:
        hot = tempered(program, temperature)
        q_rep, samples = sample_answers(hot, q_batch, num_samples)
        quality = batch_log_prob(human, q_rep, samples, human_sites, None, num_particles)
        coverage = batch_log_prob(hot, q_batch, a_batch, model_sites, guide, num_particles)
        texts = samples.to_strings(program.codec)
        per_question = [
            set(texts[s * len(questions) + b] for s in range(num_samples)) for b in range(len(questions))
        ]
        points.append(
            TemperaturePoint(
                temperature=float(temperature),
                quality=float(quality.mean()),
                coverage=float(coverage.mean()),
                distinct=sum(len(s) for s in per_question) / (num_samples * len(questions)),
            )
        )
    return points
