"""The experiment module of notebook 04 (GHOLM-Net): the grid of every profile, the numbers file, the tables and
conclusions computed from records, the test-time evaluations and the helpers."""

import math

import pytest
import timm
import torch

from fgic import profiles
from fgic.data import list_datasets
from fgic.data.transforms import list_presets
from fgic.experiments import base
from fgic.experiments import gholm as ex
from fgic.losses import list_losses
from fgic.models import create_model, list_models
from tests.helpers import default3

BACKBONE_KW = {"dims", "depths", "output_stride", "ls_init_value", "drop_rate", "width", "input_size", "pretrained_tag"}




def test_the_module_has_the_one_surface():
    assert base.check_surface(ex) == [] and ex.NOTEBOOK == "04_gholm_net"


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_grid_builds_for_every_profile(profile):
    S = profiles.settings(ex.NOTEBOOK, profile)
    grid = ex.grid(S)
    assert grid, "no runs"
    assert len({s.run_id for s in grid.values()}) == len(grid)  # no run twice (train_many would wait on itself)
    for name, s in grid.items():
        dataset, row, seed = base.parse_run_name(name)  # the one name format
        assert seed == s.config.seed, name  # s.config validates the training keys
        assert s.model in list_models() and s.loss in list_losses() and s.transform in list_presets()
        assert s.dataset in list_datasets(), name
        assert set(s.model_kw) - BACKBONE_KW <= set(ex.ROWS["Raw"]) | {"mu"}, name
        assert dataset in (ex.BENCHMARK, *ex.DATASETS) or dataset.startswith(ex.BENCHMARK + "@"), name
        seeds = [*S.seeds, *S.extra_seeds.get(row, [])] if dataset.startswith(ex.BENCHMARK) else S.real_seeds
        assert seed in seeds, name
        if s.dataset == "synthetic":
            assert s.data_kw["image_size"] == s.transform_kw["image_size"] and s.pretrained is False
            # rendered at the original resolution, fed to the network at the benchmark's size
            assert s.model_kw["input_size"] == S.benchmark.image_size
            assert s.data_kw["image_size"] == S.bench_source_scale * S.benchmark.image_size
            assert s.data_kw.get("val_fraction", 0.1) > 0  # our addition: the held-out validation split
        else:
            assert s.data_kw["val_fraction"] == 0  # the paper's protocol: the whole official training split
    for row in ex.ROWS:  # every ablation row on the benchmark, every seed
        for seed in S.seeds:
            assert base.run_name(ex.BENCHMARK, row, seed) in grid
    # the switches of each row are what Tables 2 / 3 say
    assert grid[base.run_name(ex.BENCHMARK, "Raw", 0)].model_kw["use_crop"] is False
    assert "use_drop" not in grid[base.run_name(ex.BENCHMARK, "+Drop", 0)].model_kw
    # mu = 1.7 and the benchmark's own object scale are the full model's run, never a second run
    assert base.run_name(ex.BENCHMARK, ex.mu_row(ex.DEFAULT_MU), 0) not in grid
    assert not any(n.startswith(ex.scale_label(S.benchmark.object_scale) + ":") for n in grid)
    for scale in S.object_scales:
        if scale != S.benchmark.object_scale:
            s = grid[base.run_name(ex.scale_label(scale), ex.FULL, S.seeds[-1])]
            assert s.data_kw["object_scale"] == scale


def test_every_compared_row_has_three_seeds_in_the_default_profile():
    S = default3(ex.NOTEBOOK, object_scales=[0.95, 0.7])
    assert S.seeds == [0, 1, 2]
    rows = base.seeds_by_row(ex.grid(S))
    assert {(ex.BENCHMARK, r) for r in ex.ROWS} <= set(rows)
    small = [s for s in S.object_scales if s < S.benchmark.object_scale]
    assert small and all((ex.scale_label(s), r) in rows for s in small for r in (ex.RAW, ex.FULL))
    assert all(seeds == [0, 1, 2] for seeds in rows.values()), rows
    assert profiles.settings(ex.NOTEBOOK, "smoke").seeds == [0]


def test_cpu_profiles_use_the_benchmark_only():
    for profile in ("smoke", "default"):
        S = profiles.settings(ex.NOTEBOOK, profile)
        assert {s.dataset for s in ex.grid(S).values()} == {"synthetic"}


def test_paper_profile_follows_the_paper():
    S = profiles.settings(ex.NOTEBOOK, "paper")
    grid = ex.grid(S)
    real = {k: s for k, s in grid.items() if s.dataset != "synthetic"}
    assert {s.dataset for s in real.values()} == {"cub", "cars", "aircraft", "dogs"}
    for s in real.values():
        cfg = s.config
        assert s.model == "gholm_convnext_small" and s.pretrained is True and s.transform == "gholm"
        assert cfg.optimizer == "sgd" and cfg.momentum == 0.9 and cfg.weight_decay == 1e-4 and cfg.batch_size == 16
        assert cfg.lr == 1e-3 and cfg.schedule == "multistep" and cfg.milestones == (15, 30) and cfg.gamma == 0.1
        assert s.transform_kw.get("dogs", False) == (s.dataset == "dogs")
        # the crop source is the 896 px view; the network sees 448 px (the paper's input)
        assert s.model_kw["input_size"] == 448 and s.transform_kw["image_size"] == 448 * S.source_scale > 448
        # ImageNet-21k weights, ImageNet-1k for Stanford Dogs (section 4.2)
        assert s.model_kw["pretrained_tag"] == ("fb_in1k" if s.dataset == "dogs" else "fb_in22k")
        assert timm.models.get_pretrained_cfg(f"convnext_small.{s.model_kw['pretrained_tag']}") is not None
    for row in ex.ROWS:  # Tables 2 and 3
        assert base.run_name("cub", row, 0) in grid and base.run_name("cars", row, 0) in grid
    for mu in ex.load_numbers()["table4"]["mu"]:  # Table 4 (mu = 1.7: the +Drop run)
        assert (base.run_name("cub", ex.mu_row(mu), 0) in grid) == (mu != ex.DEFAULT_MU)
    for d in ("aircraft", "dogs"):  # Tables 8, 9
        assert {base.run_name(d, r, 0) for r in (ex.RAW, ex.FULL)} <= set(grid)
    assert len(real) == 17  # 8 ablation + 5 mu + 4 comparison runs, one seed each (real_seeds)
    with pytest.raises(ValueError):
        ex.spec(S, "cub", object_scale=0.5)
    with pytest.raises(KeyError):
        ex.spec(S, "imagenet")


def test_numbers_have_the_tables_shapes():
    n = ex.load_numbers()
    for t in ("table2", "table3"):
        assert list(n[t]["rows"]) == list(ex.ROWS)
        acc = list(n[t]["rows"].values())
        assert acc == sorted(acc)  # each branch adds accuracy in the paper
    assert list(n["table4"]["mu"]) == [1.6, 1.7, 1.8, 1.9, 2.0, 2.1]
    assert max(n["table4"]["mu"], key=n["table4"]["mu"].get) == ex.DEFAULT_MU
    assert n["table4"]["mu"][ex.DEFAULT_MU] == n["table2"]["rows"]["+Drop"]  # the same full model
    assert list(n["table5"]["rows"]) == list(ex.LOGIT_MODES)
    for t, d in ex.COMPARISON.items():
        rows = n[t]["rows"]
        assert n[t]["dataset"] == d and len(rows) in (6, 7)
        by = {r["method"]: r["acc"] for r in rows}
        assert by["GHOLM-Net (ours)"] > by["ConvNeXt [9]"]
        assert set(ex.OURS) <= set(by)
    assert {r["method"]: r["acc"] for r in n["table7"]["rows"]}["ConvNeXt [9]"] == n["table2"]["rows"]["Raw"]
    P = ex.paper_numbers()
    assert list(P.columns) == base.PAPER_COLUMNS
    assert base.paper_column(P, "table2", "cub") == n["table2"]["rows"]
    assert base.paper_column(P, "table4", "cub")["mu=1.7"] == 91.8
    assert base.paper_column(P, "table5", "cub") == {"raw logits": 91.6, "crop logits": 91.5, "raw + crop logits": 91.8}
    assert base.paper_column(P, "table9", "dogs")["GHOLM-Net (ours)"] == 94.4
    q = ex.quoted("table8")
    assert len(q) == 7 and q.loc["GHOLM-Net (ours)", "ours"] == ex.FULL


# ------------------------------------------------------------------------------------------- tables
HIST = [{"epoch": e, "train_loss": 1.0} for e in range(1, 5)]


def rec(acc, status="finished"):
    return {"status": status, "metrics": {"test_top1": acc}, "history": HIST, "num_classes": 10, "run_id": f"r{acc}",
            "group": "smoke"}  # arithmetic only: the learn check is in test_health


def fake_records(values: dict) -> dict:
    """``{run name: fake record}`` from ``{(column, row): [accuracy per seed]}``."""
    return {base.run_name(col, row, s): rec(a) for (col, row), accs in values.items() for s, a in enumerate(accs)}


def test_tables_give_the_hand_computed_means_and_paired_differences():
    S = default3(ex.NOTEBOOK, object_scales=[0.95, 0.7])
    values = {
        (ex.BENCHMARK, "Raw"): [0.60, 0.62, 0.64],
        (ex.BENCHMARK, "+Crop"): [0.63, 0.66, 0.66],  # +3, +4, +2 points: mean +3
        (ex.BENCHMARK, "+Sup"): [0.64, 0.66, 0.67],  # +1, 0, +1 over +Crop
        (ex.BENCHMARK, "+Drop"): [0.70, 0.70, 0.10],  # seed 2 collapsed: at chance (10 classes)
        (ex.scale_label(0.7), ex.RAW): [0.20, 0.30, 0.25],
        (ex.scale_label(0.7), ex.FULL): [0.30, 0.35, 0.40],  # +10, +5, +15
    }
    T = ex.tables(S, fake_records(values))
    assert set(T) == {"table2/benchmark", "table2-steps/benchmark", "object-scale/benchmark@0.7"}
    t = T["table2/benchmark"]
    assert list(t.index) == list(ex.ROWS) and t.loc["Raw", "verdict"] == "baseline"
    assert t.loc["Raw", "paper"] == 90.6 and t.loc["Raw", "paper: table3"] == 93.2  # CUB's and Cars' numbers
    assert t.loc["Raw", "mean"] == pytest.approx(62.0) and t.loc["Raw", "std"] == pytest.approx(2.0)
    assert t.loc["+Crop", "mean"] == pytest.approx(65.0) and t.loc["+Crop", "diff"] == pytest.approx(3.0)
    assert t.loc["+Crop", "paper_diff"] == pytest.approx(0.8) and t.loc["+Crop", "n"] == 3
    # the collapsed seed is reported, never averaged in: +Drop is the mean of two seeds, paired over two
    assert t.loc["+Drop", "n"] == 2 and t.loc["+Drop", "mean"] == pytest.approx(70.0)
    assert t.loc["+Drop", "diff"] == pytest.approx(9.0) and t.loc["+Drop", "n_paired"] == 2
    assert t.loc["+Drop", "failed"].startswith("1 of 3 failed (seed 2: collapsed")
    steps = T["table2-steps/benchmark"]
    assert list(steps.index) == ["+Crop", "+Sup", "+Drop"] and list(steps["vs"]) == ["Raw", "+Crop", "+Sup"]
    assert steps.loc["+Sup", "diff"] == pytest.approx(2 / 3) and steps.loc["+Sup", "paper_diff"] == pytest.approx(0.2)
    scale = T["object-scale/benchmark@0.7"]
    assert scale.loc[ex.FULL, "diff"] == pytest.approx(10.0) and math.isnan(scale.loc[ex.FULL, "paper"])


def test_test_time_tables_read_the_evaluations():
    S = default3(ex.NOTEBOOK, object_scales=[0.95, 0.7])
    values = {(ex.BENCHMARK, row): [0.6, 0.6, 0.6] for row in ex.ROWS}
    values.update({(ex.BENCHMARK, ex.LOGIT_ROWS["raw"]): [0.60, 0.62, 0.64],
                   (ex.BENCHMARK, ex.LOGIT_ROWS["crop"]): [0.50, 0.52, 0.54],
                   (ex.BENCHMARK, ex.LOGIT_ROWS["both"]): [0.62, 0.63, 0.66]})  # +2, +1, +2 over raw
    values.update({(ex.BENCHMARK, ex.test_mu_row(m)): [0.6, 0.61, 0.62] for m in S.mu_eval})
    T = ex.tables(S, fake_records(values))
    t5 = T["table5/benchmark"]
    assert t5.loc["raw logits", "verdict"] == "baseline" and t5.loc["raw + crop logits", "paper"] == 91.8
    assert t5.loc["raw + crop logits", "diff"] == pytest.approx(5 / 3)
    assert t5.loc["crop logits", "diff"] == pytest.approx(-10.0)
    mu = T["table4-test-time/benchmark"]
    assert list(mu.index) == [ex.test_mu_row(m) for m in sorted(S.mu_eval)]
    assert mu.loc[ex.test_mu_row(1.7), "verdict"] == "baseline" and mu["paper"].isna().all()


def test_conclusions_are_computed_from_the_records():
    S = default3(ex.NOTEBOOK, object_scales=[0.95, 0.7])
    values = {(ex.BENCHMARK, r): [0.60, 0.62, 0.64] for r in ex.ROWS}
    values[(ex.BENCHMARK, "+Crop")] = [0.70, 0.73, 0.74]  # clearly better than Raw
    before = {c.key: c for c in ex.conclusions(S, fake_records(values))}
    assert before["table2/benchmark/+Crop"].verdict == "reproduced"  # the paper's direction, significant
    assert before["claim/crop/benchmark"].verdict == "reproduced"
    assert before["claim/crop/benchmark"].text.endswith(": reproduced")
    assert before["claim/full/real-data"].verdict == "not testable" and "paper profile" in before[
        "claim/full/real-data"].text
    assert "table2/benchmark/Raw" not in before  # the baseline has no line of its own
    assert not any("$" in c.text for c in before.values())  # shown as Markdown: a dollar would start math
    values[(ex.BENCHMARK, "+Crop")] = [0.50, 0.51, 0.55]  # now clearly worse
    after = {c.key: c for c in ex.conclusions(S, fake_records(values))}
    assert set(after) == set(before)  # stable keys (python -m fgic reproduce matches them)
    assert after["table2/benchmark/+Crop"].verdict == "contradicted"
    assert after["table2/benchmark/+Crop"].text != before["table2/benchmark/+Crop"].text
    assert after["claim/crop/benchmark"].text.endswith(": contradicted")
    smoke = profiles.settings(ex.NOTEBOOK, "smoke")  # one seed: nothing to pair
    one = {c.key: c for c in ex.conclusions(smoke, fake_records({k: v[:1] for k, v in values.items()}))}
    assert one["table2/benchmark/+Crop"].verdict.startswith("n < 2 paired seeds")
    assert one["claim/crop/benchmark"].verdict == "not testable"


def test_paper_profile_tables_cover_the_real_data_sets():
    S = profiles.settings(ex.NOTEBOOK, "paper")
    recs = {name: rec(0.9) for name in ex.grid(S)}
    T = ex.tables(S, recs)
    for key in ("table2/cub", "table3/cars", "table4/cub", "table4/benchmark", "table6/cars", "table9/dogs",
                "object-scale/benchmark@0.5"):
        assert key in T, key
    assert T["table9/dogs"].loc[ex.FULL, "paper"] == 94.4 and T["table9/dogs"].loc[ex.RAW, "paper"] == 93.4
    assert T["table4/cub"].loc["mu=1.7", "n"] == 1  # the +Drop run stands for mu = 1.7
    keys = {c.key for c in ex.conclusions(S, recs)}
    assert {"claim/full/cub", "claim/full/dogs", "claim/crop/cars"} <= keys


def test_own_data_replaces_the_benchmark_and_has_no_object_scales(tmp_path):
    S = profiles.settings(ex.NOTEBOOK, "default", dataset="folder", data_root=str(tmp_path), image_size=40)
    grid = ex.grid(S)
    assert S.object_scales and not any("@" in n for n in grid)  # the bird size is a knob of the benchmark only
    for name, s in grid.items():
        assert s.dataset == "folder" and s.data_kw["root"] == str(tmp_path), name
        assert s.transform_kw["image_size"] == 40 * S.bench_source_scale and s.model_kw["input_size"] == 40, name
    with pytest.raises(ValueError, match="object_scale"):
        ex.spec(S, ex.BENCHMARK, object_scale=0.5)
    assert not any(k.startswith("object-scale") for k in ex.tables(S, {}))


def test_coverage_closed_form():
    crop = torch.tensor([0.0, 0.0, 10.0, 10.0])
    obj = torch.tensor([0.0, 0.0, 20.0, 10.0])
    parts = [torch.tensor([2.0, 2.0, 4.0, 4.0]), torch.tensor([9.0, 0.0, 13.0, 4.0])]  # inside; a quarter inside
    c = ex._coverage(crop, obj, parts, (20, 20))
    assert c["part_centres_in"] == 0.5 and c["all_part_centres_in"] == 0.0
    assert abs(c["part_covered"] - 0.625) < 1e-6 and abs(c["object_covered"] - 0.5) < 1e-6
    assert abs(c["crop_area"] - 0.25) < 1e-6
    ref = ex._centred(crop[None], 20, 20)[0]
    assert torch.equal(ref, torch.tensor([5.0, 5.0, 15.0, 15.0]))


def test_logit_modes_and_coverage_on_a_tiny_model():
    from fgic.data import build_dataset
    from fgic.data.transforms import build_transform

    S = profiles.settings(ex.NOTEBOOK, "smoke")
    s = ex.spec(S, ex.BENCHMARK)
    torch.manual_seed(0)
    ds = build_dataset(
        "synthetic", split="test", transform=build_transform(s.transform, False, **s.transform_kw), **s.data_kw
    )
    assert ds[0][0].shape[-1] == 64  # the original view; the model resizes it to 32 px
    model = create_model(s.model, ds.num_classes, **s.model_kw)

    class Rec(dict):
        run_id = "tiny"

    out = ex.logit_mode_accuracy(Rec(name="tiny"), limit=9, model=model, dataset=ds, mu=2.0)
    # class-balanced: 9 // 4 classes = 2 test images of every class
    assert out["n"] == 8 and out["per_class"] == [2] and out["mu"] == 2.0 and model.mu == ex.DEFAULT_MU
    assert set(out["metrics"]) == {f"top1_{m}" for m in ex.LOGIT_MODES}
    # known values: a stand-in whose raw / crop / raw + crop predictions are set per true class
    picks = {0: (0, 0, 0), 1: (1, 2, 3), 2: (0, 1, 2), 3: (3, 0, 1)}  # class: (raw, crop, both) predictions
    label_of = {ds[i][0].numpy().tobytes(): ds[i][1] for i in range(len(ds))}

    class Scripted(torch.nn.Module):
        mu, seen_mu = ex.DEFAULT_MU, []

        def predict_logits(self, x, mode):  # raw: 2 at a, 1.5 at b; crop: 2 at d, 1.5 at b; raw + crop: b wins
            self.seen_mu.append(self.mu)
            z = torch.zeros(len(x), 4)
            for i, img in enumerate(x):
                a, d, b = picks[label_of[img.numpy().tobytes()]]
                z[i, a if mode == "raw" else d] += 2.0
                z[i, b] += 1.5
            return z

    stub = Scripted()
    got = ex.logit_mode_accuracy(Rec(name="stub"), limit=9, model=stub, dataset=ds, mu=2.0)
    # raw right for classes 0, 1, 3; crop for 0; raw + crop for 0, 2 (2 images per class of 8)
    assert got["metrics"] == pytest.approx({"top1_raw": 6 / 8, "top1_crop": 2 / 8, "top1_both": 4 / 8})
    assert set(stub.seen_mu) == {2.0} and stub.mu == ex.DEFAULT_MU
    bad = ex.logit_mode_accuracy(Rec(name="tiny", status="failed", error="boom"), limit=4, model=model, dataset=ds)
    from fgic import viz

    t = viz.paper_vs_ours([{"setting": "raw", "run": bad, "metric": "top1_raw"}], health=True)
    assert t["ours"][0].startswith("failed: status failed (boom)")  # Table 5 of a failed run says so
    cov = ex.crop_coverage(model, ds, [0, 3, 5], batch_size=2)
    assert len(cov) == 3 and cov.filter(like="crop_area").le(1 + 1e-6).all().all()
    assert (cov["crop: part_centres_in"] >= cov["crop: all_part_centres_in"]).all()
    fig, views = ex.branch_figure(model, torch.stack([ds[i][0] for i in range(2)]), titles=["a", "b"])
    assert views["crops"].shape == (2, 3, 32, 32) and len(fig.axes) == 8


def test_measure_cost_passes_its_step_counts_to_the_bench():
    """Notebook 04's cost cell: the bench's step / block counts come from the settings (broke once)."""
    cost = ex.measure_cost("cpu", iters=1, warmup=0, repeats=2)
    assert (cost["steps"], cost["repeats"]) == (1, 2)
    assert cost["ratio"] > 0 and cost["three_branch_step_s"] > 0


def test_evaluate_scores_every_seed_of_the_full_model(monkeypatch):
    """Table 5 and the test-time mu sweep: one record-like entry per (row, seed), health carried over."""
    from types import SimpleNamespace

    from fgic.data import build_dataset
    from fgic.data.transforms import build_transform

    S = profiles.settings(ex.NOTEBOOK, "smoke", overrides=["seeds=[0, 1]"])
    s = ex.spec(S, ex.BENCHMARK)
    ds = build_dataset("synthetic", split="test", transform=build_transform(s.transform, False, **s.transform_kw),
                       **s.data_kw)
    torch.manual_seed(0)
    model = create_model(s.model, ds.num_classes, **s.model_kw)
    monkeypatch.setattr(ex, "test_set", lambda spec: ds)

    class Rec(dict):
        run_id, spec = "tiny", s

        def predictor(self, device):
            return SimpleNamespace(model=model)

    nan = [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": float("nan")}]  # seed 1 diverged
    records = {base.run_name(ex.BENCHMARK, ex.FULL, seed): Rec(name=f"s{seed}", status="finished", num_classes=4,
                                                               history=h) for seed, h in ((0, HIST[:1]), (1, nan))}
    ev = ex.evaluate(S, records)
    rows = [*ex.LOGIT_ROWS.values(), *map(ex.test_mu_row, S.mu_eval)]
    assert set(ev) == {base.run_name(ex.BENCHMARK, r, seed) for r in rows for seed in (0, 1)}
    for e in ev.values():
        assert 0 <= e["metrics"]["test_top1"] <= 1 and e["n"] == 32 - 32 % ds.num_classes
    both = ev[base.run_name(ex.BENCHMARK, ex.LOGIT_ROWS["both"], 0)]["metrics"]["test_top1"]
    assert ev[base.run_name(ex.BENCHMARK, ex.test_mu_row(1.7), 0)]["metrics"]["test_top1"] == both
    t5 = ex.tables(S, ev)["table5/benchmark"]
    assert t5.loc["raw + crop logits", "failed"].startswith("1 of 2 failed (seed 1: diverged")  # seed 1's history
