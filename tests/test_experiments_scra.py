"""The experiment grid of notebook 05 (ConvNeXt-V2 + SCRA, Table 1) and its published numbers."""

from __future__ import annotations

import pytest
import torch

from fgic import profiles
from fgic.data import list_datasets
from fgic.data.transforms import list_presets
from fgic.experiments import scra as X
from fgic.losses import list_losses
from fgic.models import list_models


@pytest.fixture(params=profiles.PROFILES)
def settings(request):
    return profiles.settings(X.NOTEBOOK, request.param)


def test_specs_build_and_are_valid(settings):
    specs = X.specs(settings)
    assert specs
    for name, spec in specs.items():
        assert spec.model in list_models() and spec.loss in list_losses() and spec.dataset in list_datasets()
        assert spec.transform in list_presets()
        cfg = spec.config  # raises on an unknown TrainConfig key
        dataset, row, seed = name.split(":")
        assert row in X.ROWS and cfg.seed == int(seed[1:])
        assert spec.train == {**settings["train"], "seed": cfg.seed}  # every cell: the profile's schedule
        r = X.ROWS[row]
        assert spec.model.endswith("_scra") == r.scra
        assert (spec.regularizer is not None) == r.l2sp
        assert ("drop_rate" in spec.model_kw) == r.dropout
        assert (spec.transform == settings.transform) == r.aug
    assert len({s.run_id for s in specs.values()}) == len(specs)  # every cell is its own run


def test_cpu_profiles_use_the_benchmark(settings):
    if settings.profile == "paper":
        return
    specs = X.specs(settings)
    assert {s.dataset for s in specs.values()} == {"synthetic"}
    assert all(s.data_kw == settings.benchmark.kw() and not s.pretrained for s in specs.values())
    assert {k.split(":")[1] for k in specs} == set(X.ROWS)  # every row of Table 1 is trained


def test_paper_profile_follows_the_paper():
    S = profiles.settings(X.NOTEBOOK, "paper")
    specs = X.specs(S)
    rec = X.load_numbers()["recipe"]
    real = {k: s for k, s in specs.items() if s.dataset != "synthetic"}
    assert {s.dataset for s in real.values()} == set(X.DATASETS) == {"cub", "cub_aircraft", "foodx251"}
    for s in specs.values():
        assert s.model.startswith("convnextv2_large") and s.pretrained is True
        assert s.transform_kw == {"image_size": rec["image_size"]}
        cfg = s.config
        assert (cfg.optimizer, cfg.lr, cfg.weight_decay) == ("adam", rec["lr"], rec["weight_decay"])
        assert (cfg.schedule, cfg.step_size, cfg.gamma) == ("step", rec["step_size"], rec["gamma"])
        assert (cfg.epochs, cfg.batch_size) == (rec["epochs"], rec["batch_size"])
        if s.regularizer:
            assert s.regularizer == {"name": "l2sp", "lam": rec["l2sp_lambda"]}
        if "drop_rate" in s.model_kw:
            assert s.model_kw["drop_rate"] == rec["dropout"]
        assert s.transform in ("scra", S.baseline_transform)
    # exactly the printed cells of Table 1 on the real sets
    printed = sum(v is not None for r in X.load_numbers()["table1"]["rows"].values() for v in r["top1"].values())
    assert len(real) == printed * len(S.seeds)
    assert "foodx251:aug:s0" not in specs and "foodx251:aug_drop_scra:s0" in specs


def test_numbers_have_table1_shape():
    n = X.load_numbers()
    rows = n["table1"]["rows"]
    assert list(rows) == list(X.ROWS)
    for r in rows.values():
        assert set(r["top1"]) == set(X.DATASETS)
        assert r["gflops"] > 60 and r["params_m"] > 190
    t = X.table1()
    assert t.shape == (6, 5)
    # every printed "(+x)" delta of Table 1 is the row minus the baseline: re-derive two of them
    assert round(rows["aug_drop_scra"]["top1"]["cub_aircraft"] - rows["baseline"]["top1"]["cub_aircraft"], 2) == 0.51
    assert round(rows["aug_drop_scra"]["top1"]["foodx251"] - rows["baseline"]["top1"]["foodx251"], 2) == 0.82
    assert {d["num_classes"] for d in n["datasets"].values()} == {200, 300, 251}
    assert n["abstract"]["flops_budget"] == 0.05


def test_table1_rows_mark_unrun_cells():
    S = profiles.settings(X.NOTEBOOK, "smoke")
    fake = {X.run_name(X.BENCHMARK, "baseline", 0): {"run_id": "abc", "metrics": {"test_top1": 0.5}}}
    from fgic.viz import NOT_RUN, paper_vs_ours

    df = paper_vs_ours(X.table1_rows(fake, S))
    assert len(df) == len(X.ROWS) * (len(X.DATASETS) + 1)
    bench = df[df.dataset == "embedded benchmark"]
    assert bench.paper.isna().all() and bench.iloc[0]["ours"] == 50.0 and bench.iloc[0]["run"] == "abc"
    assert (df[df.dataset != "embedded benchmark"].ours == NOT_RUN).all()


def test_measure_scra_cost_matches_closed_form():
    S = profiles.settings(X.NOTEBOOK, "smoke")
    size, k = 32, 4
    base = X.measure(X.row_spec(S, X.BENCHMARK, "aug_l2sp_drop"), k, size)
    withs = X.measure(X.row_spec(S, X.BENCHMARK, "aug_l2sp_drop_scra"), k, size)
    c = S.model_kw["dims"][0]  # stage-1 channels
    h = size // 4  # stage-1 resolution
    assert withs["params"] - base["params"] == c * c + c  # 1x1 conv with bias
    assert withs["flops"] - base["flops"] == 2 * c * c * h * h  # FLOPs = 2 x MACs, bias not counted
    meta = X.measure(X.row_spec(S, X.BENCHMARK, "aug_l2sp_drop_scra"), k, size, device="meta")
    assert (meta["params"], meta["flops"]) == (withs["params"], withs["flops"])


def test_heatmap_helpers_on_a_tiny_model():
    S = profiles.settings(X.NOTEBOOK, "smoke")
    from fgic.models import create_model

    torch.manual_seed(0)
    m = create_model(S.model + "_scra", num_classes=3, **S.model_kw).eval()
    torch.nn.init.normal_(m.scra.conv.weight, std=0.5)  # a gate that varies over channels
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    for hm in (X.stage1_grad_cam(m, x, y), X.gate_heatmap(m, x, "mean"), X.gate_heatmap(m, x, "std")):
        assert hm.shape == (2, 32, 32) and float(hm.min()) >= 0 and float(hm.max()) <= 1
    eff = X.gate_effect(m, x)
    assert eff["full gate"] > 1e-3 and eff["channel-mean gate"] < 1e-3  # LayerNorm undoes a channel-constant gate
