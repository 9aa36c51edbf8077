import math

import pytest

from retro.errors import RetroError
from retro.humans import make_human
from retro.inference.compare import compare


def test_compare_reports_bias_against_exact_and_time(float64):
    human = make_human("typist").double()
    questions, answers = human.draw(30, seed=0)
    result = compare(human, questions, answers, ["importance[prior]", "ais"], [2, 200])
    assert [(r.method, r.budget) for r in result.rows] == [
        ("importance[prior]", 2),
        ("importance[prior]", 200),
        ("ais[prior]", 2),
        ("ais[prior]", 200),
    ]
    truth = [r.log_prob for r in result.exact]
    for row in result.rows:
        records = result.estimates[(row.method, row.budget)]
        assert math.isclose(row.bias, sum(r.log_prob - t for r, t in zip(records, truth)) / len(truth))
        assert row.seconds > 0 and row.num_answers == 30
    again = compare(human, questions, answers, ["importance[prior]"], [2], reference=result)
    assert again.exact is result.exact and again.rows[0].bias == result.rows[0].bias
    small, large = result.rows[0], result.rows[1]
    # importance sampling's log estimate is biased low, and the bias shrinks with K (Jensen)
    assert small.bias < 0 and small.mean_abs_error > large.mean_abs_error


def test_compare_without_exact_and_bad_methods():
    from retro.models import LatentSeq2Seq

    imitator = LatentSeq2Seq(max_length=8, hidden_dim=16, latent_dim=3)
    result = compare(imitator, ["a", "b"], ["x", "y"], ["importance"], [5])
    assert (
        result.exact is None and result.rows[0].bias is None and result.rows[0].method == "importance[prior]"
    )
    with pytest.raises(RetroError, match="unknown method 'magic'"):
        compare(imitator, ["a"], ["x"], ["magic"], [5])
    with pytest.raises(RetroError, match="needs a trained guide"):
        compare(imitator, ["a"], ["x"], ["elbo"], [5])
