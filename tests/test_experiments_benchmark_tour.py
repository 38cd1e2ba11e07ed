"""fgic.experiments.benchmark_tour (notebook 00): grid names, seeds, the baseline table and computed conclusions."""

import math

import numpy as np
import pytest

from fgic import profiles
from fgic.experiments import base
from fgic.experiments import benchmark_tour as bt

K = 10


def confusion(to_twin: float) -> list[list[float]]:
    """60 test images per class: 40 right, ``to_twin`` to the twin, the rest spread over the 8 other classes."""
    c = np.zeros((K, K))
    twins = {p for i, j in bt.twin_pairs(K) for p in ((i, j), (j, i))}
    for i in range(K):
        c[i, i] = 40
        for j in range(K):
            if (i, j) in twins:
                c[i, j] = to_twin
            elif i != j:
                c[i, j] = (20 - to_twin) / 8
    return c.tolist()


def rec(top1, to_twin=4.0, status="finished"):
    return {"status": status, "metrics": {"test_top1": top1, "confusion": confusion(to_twin)}, "num_classes": K,
            "run_id": f"r{top1}", "history": [{"epoch": e, "train_loss": 1.0, "test_acc": top1} for e in (1, 2, 3)]}


def records(values, twins=(4.0, 4.0, 4.0)):
    return {base.run_name("benchmark", bt.ROW, s): rec(v, t) for s, (v, t) in enumerate(zip(values, twins))}


@pytest.fixture(scope="module")
def S():
    return profiles.settings(bt.NOTEBOOK, "default", overrides={})


def test_surface_and_grid_names_parse(S):
    assert base.check_surface(bt) == []
    for profile in ("smoke", "default", "paper"):
        g = bt.grid(profiles.settings(bt.NOTEBOOK, profile, overrides={}))
        parsed = [base.parse_run_name(n) for n in g]
        assert {d for d, _, _ in parsed} == {"benchmark"} and {r for _, r, _ in parsed} == {bt.ROW}
        assert [spec.train["seed"] for spec in g.values()] == [s for _, _, s in parsed]
    assert list(bt.grid(S)) == ["benchmark:ResNet18:s0", "benchmark:ResNet18:s1", "benchmark:ResNet18:s2"]
    assert len({spec.run_id for spec in bt.grid(S).values()}) == 3  # three distinct runs
    assert bt.paper_numbers().empty and list(bt.paper_numbers().columns) == base.PAPER_COLUMNS


def test_default_profile_trains_every_compared_row_with_three_seeds(S):
    assert S.seeds == [0, 1, 2]
    assert base.seeds_by_row(bt.grid(S)) == {(base.BENCHMARK, bt.ROW): [0, 1, 2]}
    assert profiles.settings(bt.NOTEBOOK, "smoke", overrides={}).seeds == [0]


def test_baseline_table_has_the_hand_computed_mean_interval_and_chance(S):
    t = bt.tables(S, records([0.80, 0.82, 0.78]))["baseline"]
    r = t.loc[bt.ROW]
    # mean 80, sd 2, 95 % t interval 80 +- 4.303 * 2 / sqrt(3) = 80 +- 4.97
    assert r["mean"] == pytest.approx(80.0) and r["std"] == pytest.approx(2.0) and r["n"] == 3
    assert r["ours"] == "80.0 +- 2.0 (n=3)" and r["95 % CI"] == "[75.0, 85.0]"
    assert r["per seed"] == "s0 80.0, s1 82.0, s2 78.0" and r["min seed"] == pytest.approx(78.0)
    assert r["chance"] == pytest.approx(10.0) and r[bt.THRESHOLD] == pytest.approx(50.0)  # 5x chance
    assert r[bt.EVERY] == "yes" and math.isnan(r["diff"])  # one row: nothing to pair with
    low = bt.tables(S, records([0.80, 0.45, 0.78]))["baseline"].loc[bt.ROW]
    # the 45 % seed did not learn (< 5 x chance after 3 epochs): a failed seed with its reason, not in the mean
    assert low[bt.EVERY] == "no" and low["n"] == 2 and low["min seed"] == pytest.approx(78.0)
    assert "did not learn" in low["failed"] and "45.0 %" in low["failed"]
    assert bt.learn_threshold(4) == pytest.approx(0.625) and bt.learn_threshold(200) == pytest.approx(0.025)


def test_a_failed_seed_is_listed_not_averaged(S):
    R = records([0.80, 0.82, 0.78])
    R["benchmark:ResNet18:s2"]["status"] = "failed"
    r = bt.tables(S, R)["baseline"].loc[bt.ROW]
    assert r["n"] == 2 and r["mean"] == pytest.approx(81.0) and r["failed"].startswith("1 of 3 failed (seed 2")
    assert r[bt.EVERY] == "no"


def test_twin_confusion_and_its_paired_test(S):
    # twins get 6, 8, 7 images of 60; the other 8 classes share the rest of 20 wrong ones
    df = bt.twin_confusion(S, records([0.8, 0.8, 0.8], twins=(6.0, 8.0, 7.0)))
    assert df["to twin"].tolist() == pytest.approx([10.0, 100 * 8 / 60, 100 * 7 / 60])
    assert df.loc[0, "to another class"] == pytest.approx(100 * (14 / 8) / 60)
    assert df["difference"].tolist() == pytest.approx((df["to twin"] - df["to another class"]).tolist())


def test_conclusions_are_computed_from_the_records(S, monkeypatch):
    import pandas as pd

    placement = pd.DataFrame({"k-NN top-1": [11.0, 30.0], "95 % CI": ["[9.0, 14.0]", "[26.0, 34.0]"],
                              "chance": [10.0, 10.0], "p": [0.4, 1e-30], "n test": [600, 600],
                              "verdict": ["at chance", "above chance"]},
                             index=["placement box", "object box (reference)"])
    monkeypatch.setattr(bt, "placement_check", lambda S: placement)  # the real check builds the data set
    good = {c.key: c for c in bt.conclusions(S, records([0.80, 0.82, 0.78], twins=(6.0, 8.0, 7.0)))}
    assert list(good) == ["baseline/benchmark/ResNet18", "twins/benchmark/ResNet18",
                          "placement/benchmark/placement-box"]
    assert good["baseline/benchmark/ResNet18"].verdict == "learns"
    assert "80.0 +- 2.0 (n=3), 95 % CI [75.0, 85.0]; lowest seed 78.0 % >= 50.0 % (5x chance" in good[
        "baseline/benchmark/ResNet18"].text
    assert good["twins/benchmark/ResNet18"].verdict == "more often"
    assert good["placement/benchmark/placement-box"].verdict == "at chance"
    assert "11.0 % [9.0, 14.0]" in good["placement/benchmark/placement-box"].text
    bad = {c.key: c for c in bt.conclusions(S, records([0.80, 0.40, 0.78], twins=(1.0, 1.0, 2.0)))}
    assert bad["baseline/benchmark/ResNet18"].verdict == "below the threshold"
    text = bad["baseline/benchmark/ResNet18"].text
    assert "lowest healthy seed 78.0 %" in text and "seed 1: did not learn: test_top1 40.0 % < 5 x chance" in text
    assert bad["twins/benchmark/ResNet18"].verdict in ("less often", "no significant difference")
    one = {c.key: c for c in bt.conclusions(S, {"benchmark:ResNet18:s0": rec(0.8)})}
    assert "not testable here (n < 2 paired seeds (1))" in one["twins/benchmark/ResNet18"].text
    placement.loc["object box (reference)", "verdict"] = "at chance"  # the check cannot find the known cue
    weak = {c.key: c for c in bt.conclusions(S, {})}
    assert weak["placement/benchmark/placement-box"].verdict == "reference at chance"
    assert weak["baseline/benchmark/ResNet18"].verdict == "no healthy seed"


def test_placement_check_on_the_smoke_benchmark():
    S = profiles.settings(bt.NOTEBOOK, "smoke", overrides={})
    t = bt.placement_check(S)
    assert list(t.index) == ["placement box", "object box (reference)"]
    assert t["chance"].tolist() == pytest.approx([25.0, 25.0]) and set(t["verdict"]) <= {"at chance", "above chance"}
    assert (t["n test"] == S.benchmark.num_classes * S.benchmark.test_per_class).all()
