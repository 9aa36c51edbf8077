"""Adam runs fused where PyTorch has a fused kernel; a training state saved by the earlier ``foreach`` optimizer
(its parameter groups say ``foreach=True, fused=None``) still resumes, exactly as a run that never stopped."""

from __future__ import annotations

import copy
import dataclasses

import torch

from retro.inference import AmortizedGuide
from retro.inference.train import TrainConfig, train
from retro.models import make_imitator

QUESTIONS = ["1+1", "2+2", "3+1", "4+4", "2+1", "1+3", "5+2", "3+3"]
ANSWERS = ["2", "4", "4", "8", "3", "4", "7", "6"]


def _modules():
    torch.manual_seed(0)
    imitator = make_imitator("latent", max_length=4, hidden_dim=8, latent_dim=2)
    return imitator, AmortizedGuide(imitator, hidden_dim=8)


def _train(steps: int, resume=None, states=None):
    imitator, guide = _modules()
    config = TrainConfig(steps=steps, batch_size=4, eval_every=10**9, checkpoint_every=2, progress=False)
    train(imitator, QUESTIONS, ANSWERS, guide, config=config, resume=resume, on_checkpoint=states)
    return {**imitator.state_dict(), **{f"guide.{k}": v for k, v in guide.state_dict().items()}}


def test_a_state_saved_by_the_foreach_optimizer_resumes_exactly():
    states = []
    straight = _train(4, states=states.append)
    at_two = next(s for s in states if s.step == 2)
    assert at_two.optimizer["param_groups"][0]["fused"] is True  # on a CPU the fused kernel is used
    old = copy.deepcopy(at_two.optimizer)
    for group in old["param_groups"]:
        group["fused"], group["foreach"] = None, True
    resumed = _train(4, resume=dataclasses.replace(at_two, optimizer=old))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
