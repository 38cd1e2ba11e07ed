"""fgic.evidence: the comparison table and computed conclusions, against numbers worked out by hand."""

import math

import pytest

from fgic import evidence


def rec(top1, status="finished", epochs=3, k=10):
    hist = [{"epoch": e + 1, "train_loss": 1.0, "test_acc": top1} for e in range(epochs)]
    return {"status": status, "metrics": {"test_top1": top1}, "history": hist, "num_classes": k, "run_id": "x"}


def cells():
    return {
        "base": {0: rec(0.70), 1: rec(0.72), 2: rec(0.71)},
        # +1, +2, +3 points on seeds 0, 1, 2: mean 2, sd 1 -> t = 3.464 on 2 df, p = 0.0742 (see test_stats)
        "small": {0: rec(0.71), 1: rec(0.74), 2: rec(0.74)},
        # +10 on every seed but seed 2 collapsed to chance (10 %): paired over seeds 0 and 1 only
        "big": {0: rec(0.80), 1: rec(0.82), 2: rec(0.10)},
    }


def test_compare_means_paired_differences_and_failed_seeds():
    t = evidence.compare(cells(), baseline="base", paper={"base": 80.0, "small": 82.0, "big": 79.0})
    assert t.loc["base", "mean"] == pytest.approx(71.0) and t.loc["base", "std"] == pytest.approx(1.0)
    assert t.loc["base", "ours"] == "71.0 +- 1.0 (n=3)" and t.loc["base", "verdict"] == "baseline"
    assert t.loc["small", "diff"] == pytest.approx(2.0)
    assert t.loc["small", "p"] == pytest.approx(0.07418, abs=1e-4)
    assert t.loc["small", "verdict"] == "no significant difference"
    assert t.loc["small", "paper_diff"] == pytest.approx(2.0)
    # the collapsed seed is reported, not averaged: mean of 80 and 82
    assert t.loc["big", "n"] == 2 and t.loc["big", "mean"] == pytest.approx(81.0)
    assert t.loc["big", "failed"].startswith("1 of 3 failed (seed 2: collapsed")
    # differences +10, +10 have no spread: significant, sign opposite to the paper's -1
    assert t.loc["big", "diff"] == pytest.approx(10.0) and t.loc["big", "verdict"] == "contradicted"
    assert t.loc["big", "n_paired"] == 2


def test_conclusions_are_computed_from_the_table():
    c = cells()
    t = evidence.compare(c, baseline="base", paper={"base": 80.0, "small": 82.0})
    lines = evidence.conclusions(t, "base")
    assert lines[0] == "base (baseline): 71.0 +- 1.0 (n=3)."
    assert lines[1].startswith("small vs base: +2.0 points [95 % CI -0.5, +4.5], p = 0.074, paired over 3 seeds: "
                               "no significant difference; the paper reports +2.0; "
                               "new seeds reach p < 0.05 with chance ~")
    assert lines[1].endswith(" %.")
    assert "better than the baseline" in lines[2] and "1 of 3 failed" in lines[2]


def test_rows_without_two_paired_seeds_are_not_compared():
    c = {"base": {0: rec(0.7), 1: rec(0.72)}, "one": {0: rec(0.8), 1: rec(0.0, status="failed")}}
    t = evidence.compare(c, baseline="base")
    assert math.isnan(t.loc["one", "diff"]) and t.loc["one", "verdict"] == "n < 2 paired seeds (1)"
    assert "not compared" in evidence.conclusions(t, "base")[1]
    assert evidence.claim("One is better", t, "one").endswith("not testable here (n < 2 paired seeds (1))")
    assert evidence.claim("X", not_testable="needs CUB") == "X: not testable here (needs CUB)"
    with pytest.raises(KeyError, match="baseline"):
        evidence.compare(c, baseline="missing")


def test_claim_words():
    t = evidence.compare(cells(), baseline="base", paper={"base": 80.0, "big": 79.0})
    assert evidence.claim("Big hurts", t, "big") == "Big hurts: contradicted"
    assert evidence.claim("Small helps", t, "small") == "Small helps: no significant difference"


def test_seed_values_feed_plot_ablation():
    from fgic import viz

    data, failed = evidence.seed_values(cells())
    assert data["base"] == pytest.approx([70.0, 72.0, 71.0]) and data["big"] == pytest.approx([80.0, 82.0])
    assert failed == {"big": ["collapsed"]}
    ax = viz.plot_ablation(data, failed=failed, baseline="base")
    assert len(ax.patches) == 3 and "2 ok + 1 failed (collapsed)" in ax.get_xticklabels()[2].get_text()


def test_failed_seeds_that_finished_are_counted_only_in_the_sensitivity_line():
    c = cells()
    c["big"][3], c["base"][3] = rec(0.5, status="failed"), rec(0.73)  # a run that never finished: never counted
    t = evidence.compare(c, baseline="base")
    # the verdict stays on seeds 0 and 1; counting seed 2's measured 10 %: diffs +10, +10, -61 -> mean -13.67
    assert t.loc["big", "diff"] == pytest.approx(10.0) and t.loc["big", "n_paired"] == 2
    assert t.loc["big", "diff_all"] == pytest.approx((10 + 10 - 61) / 3) and t.loc["big", "n_all"] == 3
    assert t.loc["big", "p_all"] > 0.05 and math.isnan(t.loc["small", "diff_all"])  # no failed seed: no line
    line = evidence.sentence("big", t.loc["big"], "base")
    assert "Counting the failed seeds of this row and the baseline at their measured values (they finished " \
        "training): -13.7 points" in line
    assert "paired over 3 seeds." in line and "contradicted" not in line.split("Counting")[1]
    assert evidence.measured(c["big"], {2: "collapsed", 3: "did not finish"}) == {2: pytest.approx(0.10)}
