"""The experiment grid of notebook 04 (GHOLM-Net): specs for every profile, the numbers file, the helpers."""

import pytest
import timm
import torch

from fgic import profiles
from fgic.data import list_datasets
from fgic.data.transforms import list_presets
from fgic.experiments import gholm as ex
from fgic.losses import list_losses
from fgic.models import create_model, list_models


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_specs_build_for_every_profile(profile):
    S = profiles.settings(ex.NOTEBOOK, profile)
    grid = ex.specs(S)
    assert grid, "no runs"
    for name, s in grid.items():
        assert s.model in list_models() and s.loss in list_losses() and s.transform in list_presets()
        assert s.dataset in list_datasets(), name
        assert name.endswith(f":s{s.config.seed}"), name  # s.config validates the training keys
        backbone_kw = {
            "dims",
            "depths",
            "output_stride",
            "ls_init_value",
            "drop_rate",
            "width",
            "input_size",
            "pretrained_tag",
        }
        assert set(s.model_kw) - backbone_kw <= set(ex.ROWS["Raw"]) | {"mu"}, name
    # every ablation row on the benchmark, for every seed; the full model is shared with the mu / scale grids
    abl = ex.ablation_specs(S)
    for row in ex.ROWS:
        for seed in S.seeds or [0]:
            assert ex.run_name(ex.BENCHMARK, row, seed) in abl
    full_id = abl[ex.run_name(ex.BENCHMARK, ex.FULL)].run_id
    if ex.DEFAULT_MU in S.mu_values:
        assert ex.mu_specs(S)[ex.run_name(ex.BENCHMARK, f"mu={ex.DEFAULT_MU}")].run_id == full_id
    own = S.benchmark.object_scale
    if own in S.object_scales:
        assert ex.scale_specs(S)[ex.run_name(ex.scale_name(own), ex.FULL)].run_id == full_id
    # the switches of each row are what Tables 2 / 3 say
    assert abl[ex.run_name(ex.BENCHMARK, "Raw")].model_kw["use_crop"] is False
    assert "use_drop" not in abl[ex.run_name(ex.BENCHMARK, "+Drop")].model_kw
    for s in abl.values():
        if s.dataset == "synthetic":
            assert s.data_kw["image_size"] == s.transform_kw["image_size"] and s.pretrained is False
            # rendered at the original resolution, fed to the network at the benchmark's size
            assert s.model_kw["input_size"] == S.benchmark.image_size
            assert s.data_kw["image_size"] == S.bench_source_scale * S.benchmark.image_size


def test_cpu_profiles_use_the_benchmark_only():
    for profile in ("smoke", "default"):
        S = profiles.settings(ex.NOTEBOOK, profile)
        assert {s.dataset for s in ex.specs(S).values()} == {"synthetic"}
        assert not ex.comparison_specs(S)


def test_paper_profile_follows_the_paper():
    S = profiles.settings(ex.NOTEBOOK, "paper")
    grid = ex.specs(S)
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
        assert ex.run_name("cub", row) in grid and ex.run_name("cars", row) in grid
    for mu in ex.load_numbers()["table4"]["mu"]:  # Table 4
        assert ex.run_name("cub", f"mu={mu}") in grid
    assert grid[ex.run_name("cub", "mu=1.7")].run_id == grid[ex.run_name("cub", ex.FULL)].run_id
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
    assert {r["method"]: r["acc"] for r in n["table7"]["rows"]}["ConvNeXt [9]"] == n["table2"]["rows"]["Raw"]
    df = ex.comparison_table("table8")
    assert len(df) == 7 and (df["ours"] != "").all()


def test_mean_record_and_tables():
    recs = [
        {"run_id": "a", "name": "x", "metrics": {"test_top1": 0.5}},
        {"run_id": "b", "name": "x", "metrics": {"test_top1": 0.7}},
    ]

    class R(dict):
        run_id = property(lambda self: self["run_id"])
        metrics = property(lambda self: self["metrics"])

    m = ex.mean_record([R(r) for r in recs])
    assert m["run_id"] == "a,b" and abs(m["metrics"]["test_top1"] - 0.6) < 1e-9
    assert ex.mean_record([None]) is None
    t = ex.paper_and_ours({"Raw": 90.6, "+Crop": 91.4}, {"benchmark": {"Raw": m}})
    assert t.loc["Raw", "benchmark"] == 60.0 and t.loc["Raw", "benchmark run"] == "a,b"
    assert t.loc["+Crop", "benchmark run"] == ""



def test_mean_record_leaves_failed_seeds_out():
    class R(dict):
        run_id = property(lambda self: self["run_id"])
        metrics = property(lambda self: self["metrics"])

    hist = [{"epoch": e, "train_loss": 1.0} for e in range(3)]
    good = [R(run_id=k, name="x", num_classes=10, history=hist, metrics={"test_top1": v}) for k, v in
            (("a", 0.5), ("b", 0.7))]
    nan = R(run_id="c", name="x", num_classes=10, history=[{"epoch": 0, "train_loss": float("nan")}],
            metrics={"test_top1": 0.1})
    flat = R(run_id="d", name="x", num_classes=10, history=hist, metrics={"test_top1": 0.1})  # chance after 3 epochs
    m = ex.mean_record([*good, nan, flat])
    assert abs(m["metrics"]["test_top1"] - 0.6) < 1e-9  # the failed seeds are not averaged in
    assert m["seeds_ok"] == 2 and set(m["failed"]) == {"c", "d"}
    assert m["failed"]["c"].startswith("diverged") and m["failed"]["d"].startswith("collapsed")
    assert ex.seeds_text(m).startswith("2 ok + 2 failed (c: diverged")
    dead = ex.mean_record([nan, flat])
    assert dead["status"] == "failed" and "metrics" in dead and not dead["metrics"]
    t = ex.paper_and_ours({"Raw": 90.6, "+Drop": 92.0}, {"benchmark": {"Raw": m, "+Drop": dead}})
    assert t.loc["Raw", "benchmark"] == 60.0 and t.loc["Raw", "benchmark seeds"].startswith("2 ok + 2 failed")
    cell = t.loc["+Drop", "benchmark"]
    assert cell.startswith("failed: ") and "c: diverged" in cell and "d: collapsed" in cell
    assert t.loc["+Drop", "benchmark run"] == "c,d"
    single = ex.paper_and_ours({"Raw": 90.6}, {"benchmark": {"Raw": flat}})  # one run, no seed mean
    assert single.loc["Raw", "benchmark"].startswith("failed: collapsed") and "benchmark seeds" not in single

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
