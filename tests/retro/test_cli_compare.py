"""``retro compare --plot`` labels each point with its budget, the answers over the k-hat threshold and the
smallest ESS (not only the mean k-hat, which can hide one answer far off)."""

from retro.cli.compare import point_label
from retro.humans import make_human
from retro.inference import compare


def test_plot_labels_carry_khat_count_and_smallest_ess():
    human = make_human("typist")
    questions, answers = human.draw(6, seed=0)
    rows = compare(human, questions, answers, ["importance[prior]", "exact"], [3], seed=2).rows
    sampled, exact_row = rows
    assert point_label(sampled) == (f"3 (k>{sampled.khat_over_threshold}/6, ESS {sampled.ess_min:.3g})")
    assert 1 <= sampled.ess_min <= 3
    assert point_label(exact_row) == "3 (k>0/6, ESS -)"
