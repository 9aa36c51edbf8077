"""The estimator registry: one calling convention, and a new estimator reaches the CLI and ``compare`` by one
registration."""

import json
import shlex

import pytest
import torch

from retro.cli import main
from retro.errors import RetroError
from retro.humans import make_human
from retro.inference import (
    estimate,
    get_registration,
    method_names,
    register,
    registrations,
    resolve_method,
    unregister,
)
from retro.inference.compare import compare


@pytest.fixture
def registered(throwaway_estimator):
    throwaway_estimator("prior_half", default_budget=40, small_budget=5)


def test_builtins_are_registered_once_with_their_budgets():
    assert method_names()[:4] == ["exact", "elbo", "importance", "ais"]
    by_name = {r.name: r for r in registrations()}
    assert by_name["ais"].budget == "chains" and by_name["importance"].budget == "particles"
    assert by_name["importance"].variants() == [
        "importance[guide]",
        "importance[prior]",
        "importance[mixture]",
    ]
    assert by_name["importance"].variants(has_guide=False) == ["importance[prior]"]
    assert all(1 <= r.small_budget <= r.default_budget for r in registrations())
    assert resolve_method("importance", False)[1] == "prior" and resolve_method("ais", True)[1] == "guide"
    with pytest.raises(RetroError, match="unknown method 'magic'"):
        resolve_method("magic", False)
    with pytest.raises(RetroError, match="has no proposal 'mixture'"):
        resolve_method("ais[mixture]", True)
    with pytest.raises(RetroError, match="already registered"):
        register(get_registration("exact"))


def test_estimate_returns_records_and_info_with_the_log_weights():
    human = make_human("typist")
    questions, answers = human.draw(5, seed=0)
    records, info = estimate("importance[prior]", human, questions, answers, num_particles=30, seed=4)
    assert len(records) == 5 and info.method == "importance[prior]" and info.num_particles == 30
    assert info.log_weights.shape == (30, 5) and info.log_weights.dtype == torch.float64 and info.seconds > 0
    assert info.seed == 4
    again = estimate("importance", human, questions, answers, num_particles=30, seed=4).records
    assert [r.log_prob for r in again] == [r.log_prob for r in records]  # same seed, same draws
    ais_info = estimate("ais", human, questions, answers, num_particles=4, num_steps=3).info
    assert ais_info.diagnostics["acceptance"].shape == (5,) and ais_info.diagnostics["num_steps"] == 3
    with pytest.raises(RetroError, match="has no option 'num_steps'"):
        estimate("importance", human, questions, answers, num_steps=3)


def test_a_new_estimator_reaches_score_and_compare_by_one_registration(registered, capsys):
    command = "score --model human:typist --data human:typist --n 3 --method prior_half --particles 7 --format jsonl"
    assert main(shlex.split(command)) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["method"] for r in rows] == ["prior_half"] * 3 and rows[0]["num_particles"] == 7
    human = make_human("typist")
    questions, answers = human.draw(4, seed=1)
    result = compare(human, questions, answers, ["prior_half"], [5])
    assert result.rows[0].method == "prior_half" and result.rows[0].bias is not None
    unregister("prior_half")
    assert main(shlex.split(command)) == 2  # a usage error: no longer a choice
    assert "invalid choice: 'prior_half'" in capsys.readouterr().err
