"""Notebook 06's experiment module (fgic.experiments.cross_study): one grid over the study modules, its tables."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from fgic import profiles
from fgic.experiments import base, benchmark_tour
from fgic.experiments import cross_study as cs
from fgic.models import create_model
from fgic.models.study import STUDY_MODULES, list_study_modules
from fgic.runs import train_many

ROOT = Path(__file__).resolve().parents[1]


def smoke(**over):
    return profiles.settings(cs.NOTEBOOK, "smoke", overrides=over)


def rec(top1, k=10, epochs=3):
    """A hand-made finished run record with test top-1 ``top1``."""
    return {"status": "finished", "metrics": {"test_top1": top1}, "num_classes": k, "run_id": "r",
            "history": [{"epoch": e + 1, "train_loss": 1.0, "test_acc": top1} for e in range(epochs)]}


def _named(model) -> dict:
    """``{name: tensor as a list}`` of a state dict, torchvision's names (``features.`` of ClassifierNet dropped)."""
    return {k.removeprefix("features."): v.tolist() for k, v in model.state_dict().items()}


def weights(name, seed=0, **kw) -> dict:
    torch.manual_seed(seed)
    return _named(create_model(name, 10, **kw))


def test_the_module_has_the_one_surface():
    assert base.check_surface(cs) == []
    from fgic.reproduce import EXPERIMENTS

    assert EXPERIMENTS[cs.NOTEBOOK] == "fgic.experiments.cross_study"


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_grid_has_one_row_per_registered_module_and_seed(profile):
    S = profiles.settings(cs.NOTEBOOK, profile)
    grid = cs.grid(S)
    modules = list_study_modules()
    want = [*modules, cs.loss_row(S), *([cs.GHOLM_ROW] if S.gholm_model else [])]
    assert sorted(cs.rows(S)) == sorted(want) and cs.rows(S)[0] == "none"
    extra = sum(len(v) for v in (getattr(S, "extra_seeds", None) or {}).values())  # rows within 2 points: 5 seeds
    assert len(grid) == len(want) * len(S.seeds) + extra and len(S.seeds) >= 2
    assert len({s.run_id for s in grid.values()}) == len(grid)  # no two runs collide
    for name, spec in grid.items():
        d, row, seed = base.parse_run_name(name)
        assert d == S.dataset and spec.config.seed == seed
        assert (spec.transform, spec.train | {"seed": 0}) == (S.transform, S.train | {"seed": 0})  # one recipe
        if row in modules:
            assert (spec.model, spec.model_kw["module"], spec.loss) == (S.model, row, "ce")
        elif row == cs.loss_row(S):
            assert (spec.model, spec.model_kw["module"], spec.loss) == (S.model, "none", S.loss)
        else:
            assert row == cs.GHOLM_ROW and spec.model == S.gholm_model and "module" not in spec.model_kw


def test_a_newly_registered_module_is_a_new_row(monkeypatch):
    list_study_modules()  # load the registry before copying it
    monkeypatch.setattr(STUDY_MODULES, "_entries", dict(STUDY_MODULES._entries))  # undone after the test

    @STUDY_MODULES.register("throwaway", paper="test", where="after layer2")
    def throwaway(net):
        """A 1x1 conv on the output of stage 2."""
        net.after["layer2"] = nn.Conv2d(net.stage_channels[1], net.stage_channels[1], 1)

    S = smoke()
    grid = cs.grid(S)
    assert "throwaway" in cs.rows(S) and "throwaway" in cs.describe_rows(S).index
    spec = grid[base.run_name(S.dataset, "throwaway", S.seeds[0])]
    assert spec.model_kw["module"] == "throwaway"
    assert create_model(spec.model, 4, **spec.model_kw).after["layer2"].kernel_size == (1, 1)


def test_a_list_of_modules_picks_rows_and_an_unknown_one_raises():
    S = smoke(modules=["se", "csca"], loss=None, gholm_model=None)
    assert cs.rows(S) == ["none", "se", "csca"]  # the baseline always, first
    with pytest.raises(KeyError, match="cbam"):
        cs.rows(smoke(modules=["cbam"]))
    with pytest.raises(ValueError, match="modules"):
        smoke(modules="some")


def test_baseline_shares_notebook_00s_recipe_and_network():
    """Notebook 00's ResNet18 and this study's ``none`` row differ only in the builder's name, its ``module``
    argument and the number of epochs (so their run ids differ); the two builders give the same network with the
    same weights."""
    S6, S0 = (profiles.settings(n, "default", overrides={"extra_seeds": {}})
              for n in (cs.NOTEBOOK, "00_benchmark_tour"))
    assert S6.seeds == S0.seeds
    for seed in S6.seeds:
        ours, tour = cs.spec(S6, "none", seed).to_dict(), benchmark_tour.spec(S0, seed).to_dict()
        diff = {k for k in ours if ours[k] != tour[k]}
        assert diff == {"model", "model_kw", "train"}  # the default profile halves notebook 00's 8 epochs
        assert {k for k in ours["train"] if ours["train"][k] != tour["train"].get(k)} <= {"epochs", "eval_every"}
        assert (ours["train"]["epochs"], tour["train"]["epochs"]) == (4, 8)
        assert (ours["model"], tour["model"]) == ("study_resnet18", "resnet18")
        assert {k: v for k, v in ours["model_kw"].items() if k != "module"} == tour["model_kw"]
        assert cs.spec(S6, "none", seed).run_id != benchmark_tour.spec(S0, seed).run_id
    assert weights("study_resnet18", module="none", **S0.model_kw) == weights("resnet18", **S0.model_kw)


def test_gholm_runs_on_the_same_network_as_none():
    S = profiles.settings(cs.NOTEBOOK, "default", overrides={"gholm_model": "gholm_resnet18"})
    spec = cs.spec(S, cs.GHOLM_ROW, 0)
    torch.manual_seed(0)
    gholm = create_model(spec.model, 10, **spec.model_kw).net
    assert _named(gholm) == weights("study_resnet18", module="none", **S.model_kw)


def test_best_loss_is_recomputed_from_notebook_01s_committed_records():
    found = {}
    for f in sorted((ROOT / "runs" / "default").glob("*/record.json")):
        r = json.loads(f.read_text())
        if r.get("name", "").startswith("benchmark:ResNet18/"):
            found[r["name"]] = r
    if not found:
        pytest.skip("no committed notebook-01 records in runs/default/")
    S = profiles.settings(cs.NOTEBOOK, "default")
    assert cs.best_loss(found) == cs.LOSS_LABELS[S.loss] == "MC"
    assert cs.best_loss(found, exclude="") == "CE"  # CE itself ranks first: it is the baseline's loss
    assert cs.best_loss({}) is None


def test_paper_profile_is_cub_at_448_with_weights_and_gholm_on_the_same_resnet50():
    S = profiles.settings(cs.NOTEBOOK, "paper")
    spec = cs.spec(S, "csca", 0)
    assert (spec.model, spec.dataset, spec.transform_kw, spec.pretrained) == ("study_resnet50", "cub",
                                                                             {"image_size": 448}, True)
    assert spec.data_kw == {"val_fraction": 0.0} and cs.GHOLM_ROW in cs.rows(S)
    assert cs.spec(S, cs.GHOLM_ROW, 0).model == "gholm_resnet50"
    D = profiles.settings(cs.NOTEBOOK, "default")  # GHOLM runs in the default profile too, on its backbone
    assert cs.GHOLM_ROW in cs.rows(D) and cs.spec(D, cs.GHOLM_ROW, 0).model_kw == D.model_kw
    assert list(cs.grid(D))[:3] == [f"benchmark:{cs.GHOLM_ROW}:s{s}" for s in D.seeds]  # the longest runs first
    off = profiles.settings(cs.NOTEBOOK, "default", overrides=["gholm_model=null", "gholm_why=too slow"])
    assert cs.GHOLM_ROW not in cs.rows(off)  # a profile without it says why
    with pytest.raises(KeyError, match="not run"):
        cs.spec(off, cs.GHOLM_ROW, 0)
    gholm = [c for c in cs.conclusions(off, {}) if c.key == f"claim/benchmark/{cs.GHOLM_ROW}"]
    assert len(gholm) == 1 and "not testable here (not run in this profile: too slow)" in gholm[0].text
    assert cs.robustness_table(S, {}).empty and "not testable" in cs.robustness_table(S, {}).attrs["caption"]


def test_paper_gains_come_from_each_papers_numbers():
    p = cs.paper_numbers()
    gains = dict(zip(p.row, p.value))
    assert gains["csca"] == pytest.approx(84.7 - 76.4) and gains["none+MC"] == pytest.approx(59.95 - 52.50)
    assert gains["accb"] == pytest.approx(52.73 - 52.31) and gains["fcsa"] == pytest.approx(52.31 - 48.98)
    assert gains[cs.GHOLM_ROW] == pytest.approx(91.8 - 90.6) and gains["scra"] == pytest.approx(89.96 - 89.64)
    assert "patchify" not in gains and "none" not in gains


def test_tables_and_conclusions_from_records():
    S = smoke(seeds=[0, 1, 2])
    rows = cs.rows(S)
    acc = {r: 0.65 for r in rows}
    acc.update(csca=0.75, se=0.55)  # csca: the paper's sign, se: the opposite one (all above 5 x chance)
    jitter = {0: 0.0, 1: 0.01, 2: -0.005}
    noise = lambda r, s: random.Random(f"{r}:{s}").uniform(-0.005, 0.005)  # differences with some spread
    records = {base.run_name(S.dataset, r, s): rec(acc[r] + jitter[s] + noise(r, s)) for r in rows for s in S.seeds}
    records[base.run_name(S.dataset, "ma", 2)] = None  # not run: reported, never dropped
    (name, t), = cs.tables(S, records).items()
    assert name == f"accuracy/{S.dataset}" and list(t.index) == rows
    assert {"paper", "ours", "n", "diff", "ci_low", "ci_high", "p", "verdict", "failed", "source"} <= set(t.columns)
    assert t.loc["none", "n"] == 3 and t.loc["ma", "n"] == 2 and "seed 2: not run" in t.loc["ma", "failed"]
    assert t.loc["csca", "verdict"] == "reproduced" and t.loc["se", "verdict"] == "contradicted"
    assert t.loc["none", "verdict"] == "baseline" and math.isnan(t.loc["patchify", "paper"])
    C = cs.conclusions(S, records)
    compared = [r for r in rows if r != "none"]
    assert [c.key for c in C if c.key.startswith("accuracy/")] == [f"accuracy/{S.dataset}/{r}" for r in compared]
    assert [c.key for c in C if c.key.startswith("claim/")] == [f"claim/{S.dataset}/{r}" for r in compared]
    claims = {c.key.rsplit("/", 1)[1]: c for c in C if c.key.startswith("claim/")}
    assert claims["csca"].text.endswith(": reproduced") and claims["se"].verdict == "contradicted"
    assert "not testable here (the ACANet paper has no row" in claims["patchify"].text
    (rank,) = [c for c in C if c.key.startswith("ranking/")]
    assert rank.text.index("1. csca") < rank.text.index(" se ")
    assert "ma " in rank.text and "(n=2, 1 of 3 failed; " in rank.text  # a mean over fewer seeds says so
    r = cs.ranking(t)
    assert list(r["rank"]) == list(range(1, len(rows) + 1)) and r.index[0] == "csca" and r.index[-1] == "se"


def test_pareto_front():
    pts = pd.DataFrame({"GMACs": [1.0, 2.0, 3.0, 2.5], "mean": [60.0, 70.0, 65.0, 70.0]}, index=list("abcd"))
    assert cs.pareto_front(pts, "GMACs") == ["a", "b"]  # c and d cost more for no more accuracy


def test_trained_smoke_rows_give_cost_localisation_and_robustness(tmp_path, monkeypatch):
    """Two modules, the loss row and GHOLM trained for a few steps at smoke size (two seeds): the measured tables
    have one row per row, scores in [0, 1], the paired n, and conclusions for every compared row."""
    monkeypatch.setenv("FGIC_RUNS", str(tmp_path))
    S = smoke(modules=["se"], max_steps=2)
    grid = cs.grid(S)
    R = base.by_name(train_many(list(grid.values()), group="smoke", names=list(grid), workers=1, plan=False,
                                progress=False), grid)
    rows = cs.rows(S)
    assert rows == ["none", "se", "none+MC", cs.GHOLM_ROW]
    cost = cs.cost_table(S)
    assert list(cost.index) == rows and (cost[["params (M)", "GMACs", "infer img/s", "train img/s"]] > 0).all().all()
    assert (cost["threads"] == S.cost.threads).all() and cost.loc["se", "params (M)"] > cost.loc["none", "params (M)"]
    loc = cs.localisation_table(S, R)
    assert list(loc.index) == [*rows, cs.PRIOR]
    scores = loc[list(cs.LOC_KEYS)].to_numpy(dtype=float)
    assert ((scores >= 0) & (scores <= 1)).all()  # every run scored on the benchmark's boxes (no NaN either)
    assert (loc.loc[rows, "n"] == 2).all() and loc.loc["se", "n_paired"] == 2
    rob = cs.robustness_table(S, R)
    assert list(rob.index) == rows and (rob["n"] == 2).all()
    assert rob[["clean", "shifted"]].apply(lambda c: c.between(0, 100)).all().all()
    L = cs.localisation_conclusions(S, loc)
    assert [c.key for c in L] == [f"localisation/{S.dataset}/{r}" for r in rows]
    assert len(cs.robustness_conclusions(S, rob)) == len(rows) - 1


def test_accb_is_costed_as_deployed_fused_and_trained_unfused():
    """ACCB's inference cost is the fused network's (the plain backbone's GMACs, every block fused);
    its training step runs the three branches, so it trains slower than the plain backbone."""
    S = smoke(modules=["accb"])
    none, accb = (cs.measure(cs.spec(S, r, 0), 3, 32, batch=4, repeats=2, warmup=1) for r in ("none", "accb"))
    assert accb["fused blocks"] > 0 and none["fused blocks"] == 0
    assert accb["GMACs"] == pytest.approx(none["GMACs"])  # the fused 3x3 convs: the plain network's cost
    # parameters: BN folded into the fused conv's bias (one value per channel instead of BN's two)
    assert none["params (M)"] * 0.99 < accb["params (M)"] <= none["params (M)"]


def test_spread_labels_keeps_order_and_gap_and_stays_centred():
    ys = np.array([66.0, 65.1, 65.2, 72.0, 64.4])
    out = cs.spread_labels(ys, 0.8)
    assert list(np.argsort(out)) == list(np.argsort(ys, kind="stable"))  # same order
    assert np.diff(np.sort(out)).min() >= 0.8 - 1e-9 and out.mean() == pytest.approx(ys.mean())
    far = np.array([1.0, 5.0, 9.0])
    assert cs.spread_labels(far, 0.8) == pytest.approx(far)  # already apart: unchanged


def test_accuracy_vs_cost_names_every_point_and_joins_moved_names():
    from matplotlib.figure import Figure

    table = pd.DataFrame({"mean": [69.0, 72.0, 71.0, 60.0], "std": [3.0, 4.0, 1.0, 1.0]},
                         index=["none", "scra", "softmax_sa", "fcsa"])
    cost = pd.DataFrame({"GMACs": [1.0, 1.001, 1.002, 2.0]}, index=table.index)  # three at nearly the same cost
    ax = Figure().subplots()
    front = cs.accuracy_vs_cost(ax, table, cost)
    names = {t.get_text(): t for t in ax.texts}
    assert set(names) == set(table.index) and front == ["none", "scra"]  # cheapest; most accurate
    assert names["fcsa"].arrow_patch is None  # alone: beside its point
    assert all(names[r].arrow_patch is not None for r in ("none", "scra", "softmax_sa"))  # a column, joined


def test_paper_profile_runs_the_same_grid_on_cars_where_given():
    S = profiles.settings(cs.NOTEBOOK, "paper", dataset="cars", data_root="/data/cars")
    sp = cs.spec(S, "csca", 0)
    assert (sp.dataset, sp.data_kw, sp.transform_kw) == ("cars", {"root": "/data/cars", "val_fraction": 0.0},
                                                         {"image_size": 448})
    assert (sp.model, sp.pretrained) == ("study_resnet50", True) and len(cs.grid(S)) == len(cs.rows(S)) * 3


def test_paired_differences_draws_the_sensitivity_comparison_where_there_is_one():
    from matplotlib.container import ErrorbarContainer
    from matplotlib.figure import Figure

    nan = float("nan")
    t = pd.DataFrame({"diff": [nan, 2.0, nan], "ci_low": [nan, -1.0, nan], "ci_high": [nan, 5.0, nan],
                      "verdict": ["baseline", "no significant difference", "n < 2 paired seeds (1)"],
                      "diff_all": [nan, nan, -17.9], "ci_low_all": [nan, nan, -20.1],
                      "ci_high_all": [nan, nan, -15.6]}, index=["none", "se", cs.GHOLM_ROW])
    ax = Figure().subplots()
    cs.paired_differences(ax, t)
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2 and [tk.get_text() for tk in ax.get_yticklabels()] == [
        "se (no significant difference)", f"{cs.GHOLM_ROW} (n < 2 paired seeds (1))"]
    assert bars[1].lines[0].get_xdata()[1] == pytest.approx(-17.9)  # the hollow point of the GHOLM row
    ax2 = Figure().subplots()
    cs.paired_differences(ax2, t.drop(columns=["diff_all", "ci_low_all", "ci_high_all"]))
    assert len(ax2.containers) == 1 and ax2.get_legend() is None


def test_scores_tables_keep_a_failed_seeds_own_reason():
    from fgic import evidence

    def rec(top1, hist_acc):
        hist = [{"epoch": e + 1, "train_loss": 1.0, "test_acc": hist_acc} for e in range(4)]
        return {"status": "finished", "metrics": {"test_top1": top1}, "history": hist, "num_classes": 10,
                "run_id": f"r{top1}"}

    records = {"benchmark:none:s0": rec(0.70, 0.70), "benchmark:none:s1": rec(0.72, 0.72),
               "benchmark:none+GHOLM:s1": rec(0.56, 0.56), "benchmark:none+GHOLM:s0": rec(0.486, 0.486)}
    extra = {n: {"shift_drop": -0.1} for n in records if not n.endswith("GHOLM:s0")}  # s0 failed: not scored
    got = cs._with_metrics(records, extra)
    assert set(got) == set(records) and "shift_drop" not in got["benchmark:none+GHOLM:s0"]["metrics"]
    cells = base.cells(got, "benchmark", ["none", cs.GHOLM_ROW], [0, 1])
    t = evidence.compare(cells, "none", metric="shift_drop")
    assert "seed 0: did not learn" in t.loc[cs.GHOLM_ROW, "failed"] and "not run" not in t.loc[cs.GHOLM_ROW, "failed"]


def test_heatmap_grid_shows_each_rows_first_healthy_seed(tmp_path):
    def rec(top1):
        hist = [{"epoch": e + 1, "train_loss": 1.0, "test_acc": top1} for e in range(4)]
        d = tmp_path / str(top1)
        d.mkdir()
        (d / "final.pt").write_bytes(b"")  # the weights the grid loads
        return {"status": "finished", "metrics": {"test_top1": top1}, "history": hist, "num_classes": 10,
                "dir": str(d)}

    S = profiles.settings(cs.NOTEBOOK, "default", overrides=["modules=[none]", "loss=null"])
    R = {"benchmark:none:s0": rec(0.7), "benchmark:none+GHOLM:s0": rec(0.486), "benchmark:none+GHOLM:s1": rec(0.56)}
    assert cs.showcase_runs(S, R) == {"none": "benchmark:none:s0", cs.GHOLM_ROW: "benchmark:none+GHOLM:s1"}
    R.pop("benchmark:none+GHOLM:s1")  # no healthy seed: the first one, as it is
    assert cs.showcase_runs(S, R)[cs.GHOLM_ROW] == "benchmark:none+GHOLM:s0"
