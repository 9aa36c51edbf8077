"""What users import is exported where they look: ``retro.inference``, with an explicit ``__all__``."""

import importlib

import torch

import retro.inference
from retro.inference import (
    TrainConfig,
    bdmc,
    compare,
    exact,
    load_trained,
    save_trained,
    train,
)
from retro.inference import trained as trained_module
from retro.models import make_imitator
from retro.text import AlphabetCodec

USER_NAMES = ["train", "TrainConfig", "bdmc", "compare", "save_trained", "load_trained", "TrainedImitator"]


def test_user_names_are_in_all_and_are_the_library_objects():
    assert set(USER_NAMES) <= set(retro.inference.__all__)
    assert all(hasattr(retro.inference, name) for name in retro.inference.__all__)
    homes = {"train": "train", "TrainConfig": "train", "bdmc": "bdmc", "compare": "compare"}
    for name, module in homes.items():
        assert getattr(retro.inference, name) is getattr(
            importlib.import_module(f"retro.inference.{module}"), name
        )
    assert save_trained is trained_module.save_trained and load_trained is trained_module.load_trained
    assert callable(bdmc)


def test_train_save_load_compare_from_the_package(tmp_path):
    """The user's path, every step imported from ``retro.inference``: train, save, load, compare."""
    torch.manual_seed(0)
    questions, answers = ["1+2", "2+2", "3+1", "1+1"], ["3", "4", "4", "2"]
    imitator = make_imitator("seq2seq", codec=AlphabetCodec("0123456789+"), max_length=3, hidden_dim=8)
    report = train(imitator, questions, answers, config=TrainConfig(steps=2, batch_size=4, progress=False))
    assert report.steps == 2
    save_trained(tmp_path / "ckpt", imitator, None, {"steps": report.steps})
    loaded = load_trained(tmp_path / "ckpt")
    assert loaded.info == {"steps": 2} and loaded.guide is None
    before = [r.log_prob for r in exact(imitator.eval(), questions, answers).records]
    after = [r.log_prob for r in exact(loaded.imitator, questions, answers).records]
    assert after == before
    comparison = compare(loaded.imitator, questions, answers, methods=["exact"], budgets=[1])
    assert [row.method for row in comparison.rows] == ["exact"]
