"""Experiment grids of notebooks 02 (multi-attention, Du & Ma) and 03 (mixed attention, Li et al.)."""

from __future__ import annotations

import pytest
import torch

from fgic import profiles
from fgic.data.registry import list_datasets
from fgic.data.transforms import list_presets
from fgic.experiments import mixed_attention as mx
from fgic.experiments import multi_attention as ma
from fgic.losses import list_losses
from fgic.models import create_model, list_models
from fgic.models.mixed_attention import paper_param_groups


def _valid(spec):
    assert spec.model in list_models()
    assert spec.loss in list_losses()
    assert spec.dataset in list_datasets()
    assert spec.transform in list_presets()
    cfg = spec.config  # raises on an unknown TrainConfig key
    assert cfg.epochs >= 1 and cfg.batch_size >= 2
    return cfg


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_multi_attention_specs_build(profile):
    S = profiles.settings(ma.NOTEBOOK, profile)
    specs = ma.specs(S)
    seed_runs = sum(len(v) for v in S.seed_runs.values())
    assert len(specs) == len(S.datasets) * len(ma.MODELS) + seed_runs
    assert len({s.run_id for s in specs.values()}) == len(specs)  # no two runs collide
    for name, spec in specs.items():
        _valid(spec)
        if name.startswith(ma.BENCHMARK + ":"):
            extra = {"val_fraction": S.val_fraction} if S.val_fraction is not None else {}
            assert spec.dataset == "synthetic" and spec.data_kw == {**S.benchmark.kw(), **extra}
    for m in ma.MODELS:  # the five networks of Table 1 on the benchmark in every profile
        assert ma.run_name(ma.BENCHMARK, m) in specs
    if profile != "paper":
        assert {s.dataset for s in specs.values()} == {"synthetic"}
        assert all(s.pretrained is False for s in specs.values())


def test_multi_attention_paper_profile():
    S = profiles.settings(ma.NOTEBOOK, "paper")
    specs = ma.specs(S)
    for label, name in ma.DATASETS.items():
        for m, model in ma.MODELS.items():
            spec = specs[ma.run_name(label, m)]
            assert spec.dataset == name and spec.model == model
            assert spec.transform == "multi_attention" and spec.transform_kw == {"image_size": 224}
            assert spec.pretrained is True and spec.model_kw == {}  # the full ResNet50, ImageNet weights
            assert spec.config.schedule == "cosine"


def test_multi_attention_numbers():
    t = ma.table1()
    assert t.shape == (3, 5)
    assert list(t.index) == list(ma.DATASETS) and list(t.columns) == list(ma.MODELS)
    gains = ma.load_numbers()["conclusion_gains"]  # section 4 quotes CSCA minus ResNet50
    for d, g in gains.items():
        assert abs(t.loc[d, "CSCA-ResNet50"] - t.loc[d, "ResNet50"] - g) < 0.05
    assert (t["CSCA-ResNet50"] == t.max(axis=1)).all()  # CSCA is the best column on every data set


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
def test_mixed_attention_specs_build(profile):
    S = profiles.settings(mx.NOTEBOOK, profile)
    specs = mx.specs(S)
    backbones = S.backbones or list(mx.BACKBONES)
    assert len(specs) == len(S.datasets) * len(backbones) * len(mx.VARIANTS) * len(S.seeds)
    assert len({s.run_id for s in specs.values()}) == len(specs)
    for name, spec in specs.items():
        cfg = _valid(spec)
        d, b, v, s = name.split(":")
        assert spec.model == mx.model_name(b, v) and cfg.seed == int(s[1:])
        # the paper's per-module learning rates: attention 0.1, backbone 0.01 (also the base lr)
        assert cfg.param_groups == {"attention.": 0.1, "": 0.01} and cfg.lr == 0.01
        assert cfg.schedule == "cosine" and spec.transform == "mixed_attention"
        if d == mx.BENCHMARK:  # small-sample: fewer images per class than the shared benchmark
            assert spec.dataset == "synthetic"
            assert spec.data_kw["images_per_class"] == S.small_sample["images_per_class"]
            assert spec.data_kw["images_per_class"] <= S.benchmark.images_per_class


def test_mixed_attention_paper_profile():
    S = profiles.settings(mx.NOTEBOOK, "paper")
    specs = mx.specs(S)
    for label, name in mx.DATASETS.items():
        for b in mx.BACKBONES:
            for v in mx.VARIANTS:
                spec = specs[mx.run_name(label, b, v, S.seeds[0])]
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
    t2 = mx.table2()
    assert t2.shape == (4, 4) and list(t2.index) == list(mx.VARIANTS)
    abl = mx.load_numbers()["ablation"]
    for d, row in abl.items():  # section III-D's gains are Table II's VGG16 differences (rounded)
        col = t2[(d, "VGG16")].round(2)
        assert abs(col["MA-Ours"] - row["MA-Ours"]) < 0.006
        for v in ("Baseline", "CA", "SA-Ours"):
            assert abs(col["MA-Ours"] - col[v] - row[f"over_{v}"]) < 0.015
    t1 = mx.table1()
    assert len(t1) == 10 and set(t1.columns) >= {"method", "base_model", "accuracy", "ours"}
    ours = t1[t1["ours"]]
    assert set(ours["method"]) == {"SA-Ours", "MA-Ours"} and len(ours) == 4
    vgg = ours[ours["base_model"] == "VGG16"].set_index("method")["accuracy"]  # Table I = Table II rounded (VGG16)
    for v in ("SA-Ours", "MA-Ours"):
        assert round(t2.loc[v, ("FGVC-Aircraft", "VGG16")], 1) == vgg[v]


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
