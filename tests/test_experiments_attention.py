"""Experiment grids of notebooks 02 (multi-attention, Du & Ma) and 03 (mixed attention, Li et al.)."""

from __future__ import annotations

import pytest
import torch

from fgic import profiles
from fgic.data.registry import list_datasets
from fgic.data.transforms import list_presets
from fgic.experiments import base
from fgic.experiments import mixed_attention as mx
from fgic.experiments import multi_attention as ma
from fgic.losses import list_losses
from fgic.models import create_model, list_models
from fgic.models.mixed_attention import paper_param_groups
from tests.helpers import default3


def _valid(spec):
    assert spec.model in list_models()
    assert spec.loss in list_losses()
    assert spec.dataset in list_datasets()
    assert spec.transform in list_presets()
    cfg = spec.config  # raises on an unknown TrainConfig key
    assert cfg.epochs >= 1 and cfg.batch_size >= 2
    return cfg


def rec(top1, epochs=3, k=10):
    """A hand-made finished run record with test top-1 ``top1``."""
    return {"status": "finished", "metrics": {"test_top1": top1}, "num_classes": k, "run_id": "r", "group": "smoke",
            "history": [{"epoch": e + 1, "train_loss": 1.0, "test_acc": top1} for e in range(epochs)]}


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_multi_attention_grid_builds(profile):
    S = profiles.settings(ma.NOTEBOOK, profile)
    grid = ma.grid(S)
    extra = sum(len(v) for r, v in S.extra_seeds.items() if r in ma.MODELS)  # rows within 2 points: more seeds
    assert len(grid) == len(S.datasets) * (len(ma.MODELS) * len(S.seeds) + extra)
    assert len({s.run_id for s in grid.values()}) == len(grid)  # no two runs collide
    for name, spec in grid.items():
        _valid(spec)
        d, row, seed = base.parse_run_name(name)  # the one run-name format
        assert spec.model == ma.MODELS[row] and spec.config.seed == seed
        assert seed in [*S.seeds, *S.extra_seeds.get(row, [])]  # rows within 2 points: more seeds
        if d == base.BENCHMARK:
            extra = {"val_fraction": S.val_fraction} if S.val_fraction is not None else {}
            assert spec.dataset == "synthetic" and spec.data_kw == {**S.benchmark.kw(), **extra}
        else:
            assert spec.dataset == d and d in ma.DATASETS
    for m in ma.MODELS:  # the five networks of Table 1 on the benchmark in every profile
        for s in S.seeds:
            assert base.run_name(base.BENCHMARK, m, s) in grid
    if profile != "paper":
        assert {s.dataset for s in grid.values()} == {"synthetic"}
        assert all(s.pretrained is False for s in grid.values())


def test_multi_attention_default_profile_has_three_seeds_per_row():
    S = default3(ma.NOTEBOOK)
    seeds = base.seeds_by_row(ma.grid(S))
    assert set(seeds) == {(base.BENCHMARK, m) for m in ma.MODELS}
    assert all(s == [0, 1, 2] for s in seeds.values())
    assert profiles.settings(ma.NOTEBOOK, "smoke").seeds == [0]


def test_multi_attention_paper_profile():
    S = profiles.settings(ma.NOTEBOOK, "paper")
    grid = ma.grid(S)
    for d in ma.DATASETS:
        for m, model in ma.MODELS.items():
            spec = grid[base.run_name(d, m, S.seeds[0])]
            assert spec.dataset == d and spec.model == model
            assert spec.transform == "multi_attention" and spec.transform_kw == {"image_size": 224}
            assert spec.pretrained is True and spec.model_kw == {}  # the full ResNet50, ImageNet weights
            assert spec.config.schedule == "cosine" and spec.data_kw == {"val_fraction": 0.0}


def test_multi_attention_numbers():
    p = ma.paper_numbers()
    assert list(p.columns) == base.PAPER_COLUMNS and len(p) == 15 and set(p.table) == {ma.TABLE}
    t = p.pivot(index="dataset", columns="row", values="value")
    assert set(t.index) == set(ma.DATASETS.values()) and set(t.columns) == set(ma.MODELS)
    for d, g in {"CUB-200": 8.3, "Stanford-dogs": 9.6, "Stanford-cars": 4.4}.items():  # section 4
        assert abs(t.loc[d, "CSCA-ResNet50"] - t.loc[d, "ResNet50"] - g) < 0.05
    assert (t["CSCA-ResNet50"] == t.max(axis=1)).all()  # CSCA is the best column on every data set
    assert ma.paper_column(base.BENCHMARK) == ("CUB-200", ma.paper_column("cub")[1])  # CUB beside the benchmark


def fake_records(S, values):
    """``{run name: record}`` of the benchmark column from ``{row: [top-1 per seed]}``."""
    return {base.run_name(base.BENCHMARK, m, s): rec(v) for m, vs in values.items() for s, v in zip(S.seeds, vs)}


VALUES = {  # top-1 per seed 0, 1, 2
    "ResNet50": [0.60, 0.62, 0.61],
    "FCN-ResNet50": [0.60, 0.63, 0.60],  # -0.0, +1, -1 points: mean 0
    "CA-ResNet50": [0.65, 0.66, 0.67],  # +5, +4, +6: mean +5
    "SA-ResNet50": [0.62, 0.65, 0.64],  # +2, +3, +3
    "CSCA-ResNet50": [0.70, 0.73, 0.71],  # +10, +11, +10
}


def test_multi_attention_tables_on_fake_records():
    S = default3(ma.NOTEBOOK)
    t = ma.tables(S, fake_records(S, VALUES))
    assert set(t) == {"table1/benchmark", "table1-csca/benchmark"}
    t1 = t["table1/benchmark"]
    assert list(t1.index) == list(ma.MODELS)
    assert t1.loc["ResNet50", "mean"] == pytest.approx(61.0) and t1.loc["ResNet50", "std"] == pytest.approx(1.0)
    assert t1.loc["ResNet50", "ours"] == "61.0 +- 1.0 (n=3)" and t1.loc["ResNet50", "paper"] == 76.4
    assert t1.loc["CA-ResNet50", "diff"] == pytest.approx(5.0)  # paired differences 5, 4, 6
    assert t1.loc["CA-ResNet50", "ci_low"] == pytest.approx(5.0 - 4.303 / 3 ** 0.5, abs=1e-3)  # t(0.975, 2) sd 1
    assert t1.loc["CA-ResNet50", "paper_diff"] == pytest.approx(79.1 - 76.4)
    assert t1.loc["CA-ResNet50", "verdict"] == "reproduced"
    assert t1.loc["FCN-ResNet50", "diff"] == pytest.approx(0.0, abs=1e-9)
    assert t1.loc["FCN-ResNet50", "verdict"] == "no significant difference"
    assert t1.loc["CSCA-ResNet50", "diff"] == pytest.approx(31 / 3)
    csca = t["table1-csca/benchmark"]
    assert list(csca.index) == ["CSCA-ResNet50", "FCN-ResNet50", "CA-ResNet50", "SA-ResNet50"]
    assert csca.loc["CA-ResNet50", "diff"] == pytest.approx(-(71.33333 - 66.0), abs=1e-3)
    shown = ma.view(t1, "ResNet50")
    assert shown.loc["CA-ResNet50", "diff vs ResNet50 [95 % CI]"].startswith("+5.0 [")
    assert list(shown.columns)[-1] == "failed seeds"


def test_multi_attention_conclusions_are_computed():
    S = default3(ma.NOTEBOOK)
    records = fake_records(S, VALUES)
    c = {x.key: x for x in ma.conclusions(S, records)}
    assert c["table1/benchmark/CA-ResNet50"].verdict == "reproduced"
    assert c["table1/benchmark/CA-ResNet50"].text.startswith("CA-ResNet50 vs ResNet50: +5.0 points")
    assert c["claim/benchmark/CA-ResNet50-beats-ResNet50"].text.endswith(": reproduced")
    assert c["claim/benchmark/CSCA-ResNet50-best"].verdict == "reproduced"
    assert c["claim/cub/CSCA-ResNet50-gain"].verdict == "not testable"
    assert "run the paper profile on a GPU" in c["claim/cub/CSCA-ResNet50-gain"].text
    assert "ResNet50" not in {k.rsplit("/", 1)[1] for k in c if k.startswith("table1/")}  # no baseline line
    # a record's value changes -> the conclusions change: CA now below the baseline on every seed
    for seed, v in enumerate([0.55, 0.56, 0.57]):  # -5, -6, -4 points
        records[base.run_name(base.BENCHMARK, "CA-ResNet50", seed)] = rec(v)
    c2 = {x.key: x for x in ma.conclusions(S, records)}
    assert c2["table1/benchmark/CA-ResNet50"].verdict == "contradicted"
    assert c2["table1/benchmark/CA-ResNet50"].text != c["table1/benchmark/CA-ResNet50"].text
    assert c2["claim/benchmark/CSCA-ResNet50-best"].verdict == "reproduced"
    # a failed seed is reported, and one seed only is not testable
    records[base.run_name(base.BENCHMARK, "SA-ResNet50", 0)] = {**rec(0.1), "status": "failed"}
    S1 = profiles.settings(ma.NOTEBOOK, "smoke")
    c1 = {x.key: x for x in ma.conclusions(S1, fake_records(S1, VALUES))}
    assert c1["claim/benchmark/CA-ResNet50-beats-ResNet50"].verdict == "not testable"
    assert "n < 2 paired seeds" in c1["table1/benchmark/CA-ResNet50"].text
    assert "1 of 3 failed" in ma.tables(S, records)["table1/benchmark"].loc["SA-ResNet50", "failed"]


def test_multi_attention_surface():
    assert base.check_surface(ma) == []


def test_multi_attention_heatmap_helpers():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    fcn = create_model("resnet50_fcn_head", 3, layers=(1, 1, 1, 1), width=8).eval()
    h = ma.class_cam(fcn, x, torch.tensor([0, 2]))
    assert h.shape == (2, 64, 64) and float(h.min()) >= 0 and float(h.max()) <= 1
    with torch.no_grad():  # the head's map of class 0 for image 0 and of class 2 for image 1, min-max, upsampled
        cam = fcn.cam(x)[[0, 1], [0, 2]]  # (2, h, w)
    lo, hi = cam.amin((1, 2), keepdim=True), cam.amax((1, 2), keepdim=True)
    ref = torch.nn.functional.interpolate(((cam - lo) / (hi - lo))[:, None], size=(64, 64), mode="bilinear",
                                          align_corners=False)[:, 0]
    assert torch.allclose(h, ref, atol=1e-5)
    csca = create_model("resnet50_csca_units", 3, layers=(1, 2, 1, 1), width=8).eval()
    for stage in (1, 2, 3, 4):
        h = ma.stage_attention_map(csca, x, stage)
        assert h.shape == (2, 64, 64) and float(h.min()) >= 0 and float(h.max()) <= 1
    # layer2 has two blocks: the map drawn is the last block's
    ma.stage_attention_map(csca, x, 2)
    last = csca.features.layer2[1].attn.last_map  # (B, 1, 4, 4)
    lo, hi = last.amin((1, 2, 3), keepdim=True), last.amax((1, 2, 3), keepdim=True)
    ref = torch.nn.functional.interpolate((last - lo) / (hi - lo), size=(64, 64), mode="bilinear",
                                          align_corners=False)[:, 0]
    assert torch.allclose(ma.stage_attention_map(csca, x, 2), ref, atol=1e-5)
    assert torch.equal(ma.to_image(torch.ones(2, 1, 1), (8, 8)), torch.zeros(2, 8, 8))  # constant map -> 0
    with pytest.raises(ValueError):
        ma.stage_attention_map(create_model("resnet50_ca_units", 3, layers=(1, 1, 1, 1), width=8).eval(), x, 3)


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_mixed_attention_grid_builds(profile):
    S = profiles.settings(mx.NOTEBOOK, profile)
    grid = mx.grid(S)
    backbones = S.backbones or list(mx.BACKBONES)
    extra = sum(len(v) for v in S.extra_seeds.values())  # rows within 2 points: more seeds
    assert len(grid) == len(S.datasets) * (len(backbones) * len(mx.VARIANTS) * len(S.seeds) + extra)
    assert len({s.run_id for s in grid.values()}) == len(grid)
    for name, spec in grid.items():
        cfg = _valid(spec)
        d, row, seed = base.parse_run_name(name)  # "<data set>:<backbone>/<variant>:s<seed>"
        b, v = row.split("/")
        assert name == base.run_name(d, mx.row_name(b, v), seed)
        assert d in {mx.BENCHMARK, *mx.DATASETS.values()}  # a real data set by its registry name
        assert spec.model == mx.model_name(b, v) and cfg.seed == seed
        # the paper's per-module learning rates: attention 0.1, backbone 0.01 (also the base lr)
        assert cfg.param_groups == {"attention.": 0.1, "": 0.01} and cfg.lr == 0.01
        assert cfg.schedule == "cosine" and spec.transform == "mixed_attention"
        if d == mx.BENCHMARK:  # small-sample: fewer images per class than the shared benchmark
            assert spec.dataset == "synthetic"
            assert spec.data_kw["images_per_class"] == S.small_sample["images_per_class"]
            assert spec.data_kw["images_per_class"] <= S.benchmark.images_per_class
        else:
            assert spec.dataset == d


def test_mixed_attention_default_profile_has_three_seeds_per_row():
    S = default3(mx.NOTEBOOK)
    assert S.seeds == [0, 1, 2]
    rows = base.seeds_by_row(mx.grid(S))
    assert len(rows) == len(mx.BACKBONES) * len(mx.VARIANTS)  # every row of Tables II and the ablation
    assert all(sorted(s) == [0, 1, 2] for s in rows.values()), rows
    assert profiles.settings(mx.NOTEBOOK, "smoke").seeds == [0]


def test_mixed_attention_paper_profile():
    S = profiles.settings(mx.NOTEBOOK, "paper")
    grid = mx.grid(S)
    for name in mx.DATASETS.values():
        for b in mx.BACKBONES:
            for v in mx.VARIANTS:
                spec = grid[base.run_name(name, mx.row_name(b, v), S.seeds[0])]
                cfg = spec.config
                assert spec.dataset == name and spec.pretrained is True and spec.model_kw == {}
                # the full official training split: no validation split carved out of it
                assert spec.transform_kw == {"image_size": 224} and spec.data_kw == {"val_fraction": 0.0}
                assert (cfg.batch_size, cfg.epochs, cfg.schedule) == (32, 300, "cosine")


def test_mixed_attention_param_groups_match_the_model():
    S = profiles.settings(mx.NOTEBOOK, "smoke")
    model = create_model("resnet50_ma_top", 4, layers=(1, 1, 1, 1), width=8)
    assert mx.param_groups(S) == paper_param_groups(model)
    names = [n for n, _ in model.named_parameters() if n.startswith("attention.")]
    assert names and any("merge" in n for n in names)  # MA's merge conv trains at the attention rate


def test_mixed_attention_numbers():
    n = mx.paper_numbers()
    assert list(n.columns) == base.PAPER_COLUMNS and set(n.table) == {"table1", "table2", "ablation"}
    t2 = {d: base.paper_column(n, "table2", d) for d in mx.DATASETS}
    assert all(len(c) == len(mx.BACKBONES) * len(mx.VARIANTS) for c in t2.values())
    assert t2["Stanford Cars-196"]["VGG16/MA-Ours"] == 88.8944
    for d in mx.DATASETS:  # section III-D's numbers are Table II's VGG16 differences (rounded)
        abl = base.paper_column(n, "ablation", d)
        gain = base.paper_column(n, "ablation", d, "gain")
        col = {v: round(t2[d][f"VGG16/{v}"], 2) for v in mx.VARIANTS}
        assert abs(col["MA-Ours"] - abl["VGG16/MA-Ours"]) < 0.006
        for v in ("Baseline", "CA", "SA-Ours"):
            assert abs(col["MA-Ours"] - col[v] - gain[f"VGG16/MA-Ours - {v}"]) < 0.015
    t1 = base.paper_column(n, "table1", "FGVC-Aircraft")
    assert len(t1) == 10
    for v in ("SA-Ours", "MA-Ours"):  # Table I = Table II rounded (VGG16)
        assert round(t2["FGVC-Aircraft"][f"VGG16/{v}"], 1) == t1[f"VGG16/{v}"]


def _fake(acc: float, seed: int) -> dict:
    """A finished run record with test top-1 ``acc`` (what ``evidence.compare`` reads)."""
    history = [{"epoch": e, "train_loss": 1.0 / e, "test_acc": acc} for e in (1, 2)]
    return {"status": "finished", "metrics": {"test_top1": acc}, "history": history, "num_classes": 10,
            "run_id": f"fake{seed}{acc}", "group": "smoke"}  # arithmetic only: learn check in test_health


def _fake_records(values: dict[str, list[float]], backbone: str = "VGG16") -> dict:
    return {base.run_name(mx.BENCHMARK, mx.row_name(backbone, v), s): _fake(a, s)
            for v, accs in values.items() for s, a in enumerate(accs)}


FAKE = {"Baseline": [0.50, 0.52, 0.54], "CA": [0.51, 0.53, 0.52], "SA-Ours": [0.55, 0.55, 0.58],
        "MA-Ours": [0.55, 0.56, 0.60]}


def test_mixed_attention_tables_on_fake_records():
    S = profiles.settings(mx.NOTEBOOK, "default", overrides=["backbones=[VGG16]"])
    tabs = mx.tables(S, _fake_records(FAKE))
    assert set(tabs) == {"table2/benchmark/VGG16", "ablation/benchmark/VGG16"}
    t2 = tabs["table2/benchmark/VGG16"]
    assert list(t2.index) == list(mx.VARIANTS)
    assert t2.loc["Baseline", "mean"] == pytest.approx(52.0) and t2.loc["MA-Ours", "mean"] == pytest.approx(57.0)
    assert t2.loc["MA-Ours", "diff"] == pytest.approx(5.0)  # (5 + 4 + 6) / 3 points, paired by seed
    assert t2.loc["CA", "diff"] == pytest.approx(0.0)  # (1 + 1 - 2) / 3
    assert t2.loc["MA-Ours", "n"] == 3 and t2.loc["MA-Ours", "n_paired"] == 3
    assert t2.loc["MA-Ours", "paper"] == pytest.approx(88.8944)  # Table II, Stanford Cars-196, VGG16
    assert t2.loc["MA-Ours", "paper_diff"] == pytest.approx(88.8944 - 87.9866)
    abl = tabs["ablation/benchmark/VGG16"]
    assert list(abl.index) == ["MA-Ours", "CA", "SA-Ours"] and abl.loc["MA-Ours", "verdict"] == "baseline"
    assert abl.loc["CA", "diff"] == pytest.approx(-5.0)  # CA - MA-Ours: (-4 - 3 - 8) / 3
    assert abl.loc["SA-Ours", "diff"] == pytest.approx(-1.0)  # (0 - 1 - 2) / 3
    assert abl.loc["CA", "paper_diff"] == pytest.approx(88.7452 - 88.8944)


def test_mixed_attention_tables_report_missing_and_failed_seeds():
    S = profiles.settings(mx.NOTEBOOK, "default", overrides=["backbones=[VGG16]"])
    recs = _fake_records(FAKE)
    del recs[base.run_name(mx.BENCHMARK, "VGG16/CA", 2)]
    recs[base.run_name(mx.BENCHMARK, "VGG16/SA-Ours", 1)]["status"] = "failed"
    t2 = mx.tables(S, recs)["table2/benchmark/VGG16"]
    assert "seed 2: not run" in t2.loc["CA", "failed"] and t2.loc["CA", "n"] == 2
    assert "seed 1: status failed" in t2.loc["SA-Ours", "failed"]
    assert t2.loc["SA-Ours", "mean"] == pytest.approx(56.5)  # the failed seed is never averaged in


def test_mixed_attention_conclusions_are_computed():
    S = profiles.settings(mx.NOTEBOOK, "default", overrides=["backbones=[VGG16]"])
    before = mx.conclusions(S, _fake_records(FAKE))
    keys = [c.key for c in before]
    assert len(keys) == len(set(keys))
    for k in ("table2/benchmark/VGG16/MA-Ours", "ablation/benchmark/VGG16/CA",
              "claim/benchmark/VGG16/MA-Ours-beats-Baseline", "claim/benchmark/VGG16/MA-Ours-beats-SA-Ours",
              "claim/table1/other-methods", "claim/fig3/discriminative-regions"):
        assert k in keys, k
    worse = {**FAKE, "MA-Ours": [0.45, 0.47, 0.48]}  # MA-Ours now below the baseline on every seed
    after = {c.key: c for c in mx.conclusions(S, _fake_records(worse))}
    b, a = {c.key: c for c in before}["table2/benchmark/VGG16/MA-Ours"], after["table2/benchmark/VGG16/MA-Ours"]
    assert b.text != a.text and "+5.0 points" in b.text and "-5.3 points" in a.text
    assert b.text.startswith("Table II, VGG16 on benchmark: MA-Ours vs Baseline: ")
    assert a.verdict == "contradicted"  # the paper's MA-Ours is above its baseline
    assert after["claim/benchmark/VGG16/MA-Ours-beats-Baseline"].text.endswith(": contradicted")
    assert after["claim/table1/other-methods"].verdict == "not testable"
    one_seed = profiles.settings(mx.NOTEBOOK, "smoke", overrides=["backbones=[VGG16]"])
    smoke = {c.key: c for c in mx.conclusions(one_seed, _fake_records({v: a[:1] for v, a in FAKE.items()}))}
    assert "n < 2 paired seeds" in smoke["claim/benchmark/VGG16/SA-Ours-beats-Baseline"].text


def test_mixed_attention_surface():
    assert base.check_surface(mx) == []


def test_feature_energy():
    torch.manual_seed(0)
    model = create_model("vgg16_bn_ma_top", 3, width=8).eval()
    x = torch.randn(2, 3, 64, 64)
    e = mx.feature_energy(model, x)
    assert e.shape == (2, 64, 64) and float(e.min()) >= 0 and float(e.max()) <= 1
    fmap = model.forward_features(x)  # (B, C, 2, 2)
    energy = fmap.pow(2).sum(1)  # (B, 2, 2)
    # the peak of the upsampled map sits in the quadrant of the most energetic cell
    cell = energy.flatten(1).argmax(1)
    peak = e.flatten(1).argmax(1)
    for i in range(2):
        r, c = divmod(int(peak[i]), 64)
        assert (r // 32) * 2 + c // 32 == int(cell[i])
    v = mx.spatial_attention_map(model, x)
    assert v.shape == (2, 64, 64)
    with pytest.raises(ValueError):
        mx.spatial_attention_map(create_model("vgg16_bn_top", 3, width=8).eval(), x)
