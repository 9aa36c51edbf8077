"""``retro score --certify`` and ``--target-stderr``, ``retro evaluate --target-stderr`` on a built-in human."""

from __future__ import annotations

import json

from cli_run import run_cli as run


def test_score_certify_writes_a_certified_bound_per_answer(capsys):
    code, out, err = run(
        capsys,
        "score --model human:typist --data human:typist --n 5 --method importance --proposal prior "
        "--particles 200 --certify 0.05 --format jsonl",
    )
    rows = [json.loads(line) for line in out.splitlines()]
    estimates, bounds = rows[:5], rows[5:]
    assert code == 0 and [r["kind"] for r in bounds] == ["certified"] * 5
    assert all(
        b["answer"] == e["answer"] and b["log_prob"] < e["log_prob"] for e, b in zip(estimates, bounds)
    )
    assert bounds[0]["method"] == "importance[prior]+certify(0.05)" and "certified lower bound" in err


def test_score_target_stderr_spends_particles_where_needed(capsys):
    code, out, err = run(
        capsys,
        "score --model human:typist --data human:typist --n 12 --method importance --proposal prior "
        "--particles 400 --target-stderr 0.05 --format jsonl",
    )
    rows = [json.loads(line) for line in out.splitlines()]
    used = [r["num_particles"] for r in rows]
    assert code == 0 and len(rows) == 12 and min(used) >= 10 and max(used) <= 400 and len(set(used)) > 1
    assert "in pilots" in err


def test_bad_budget_options_are_one_line_errors(capsys):
    for option in ("--certify 1.5", "--target-stderr -1"):
        code, _, err = run(capsys, f"score --model human:typist --data human:typist --n 2 {option}")
        assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_evaluate_target_stderr_reports_the_particles_used(capsys):
    code, out, _ = run(
        capsys, "evaluate --model human:typist --data human:typist --n 8 --particles 200 --target-stderr 0.1"
    )
    result = json.loads(out)
    assert code == 0 and result["target_stderr"] == 0.1
    assert 10 <= result["particles_mean"] <= 200 and result["pilot_particles_mean"] >= 10
