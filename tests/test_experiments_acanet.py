"""The experiment grid of notebook 01 (ACANet): specs for every profile, the numbers file, the table helpers."""

import pandas as pd
import pytest

from fgic import profiles, viz
from fgic.data.registry import list_datasets
from fgic.data.transforms import list_presets
from fgic.experiments import acanet as ex
from fgic.losses import list_losses
from fgic.models import create_model, list_models
from fgic.nn.fcsa import FCSA


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_specs_build_for_every_profile(profile):
    S = profiles.settings(ex.NOTEBOOK, profile)
    grid = ex.specs(S)
    assert grid
    for name, s in grid.items():
        assert s.model in list_models() and s.loss in list_losses(), name
        assert s.dataset in list_datasets() and s.transform in list_presets(), name
        assert s.pretrained is False  # the paper trains from scratch
        # s.config validates the training keys; the name carries the training seed
        assert name in {ex.run_name(m, s.loss, s.dataset, s.config.seed) for m in (s.model, *ex.VARIANTS)}
    # the tables share runs: the merged grid holds each distinct spec once, under its own name
    parts = [ex.table2_specs(S), ex.table3_specs(S), ex.table4_specs(S)]
    assert set(grid) == set().union(*parts)
    assert len({s.run_id for s in grid.values()}) == len(grid)
    t2 = ex.table2_specs(S)
    for m in S.table3.models:
        if m in S.table2.models and "ce" in S.table2.losses:  # Table 3 reuses Table 2's CE runs
            for d in S.datasets:
                key = ex.run_name(m, "ce", d, S.seed)
                assert ex.table3_specs(S)[key].run_id == t2[key].run_id
    # the ablation: every model x loss x seed, and seeds differ only in the training seed
    t4 = ex.table4_specs(S)
    assert len(t4) == len(S.table4.models) * len(S.table4.losses) * len(S.table4.seeds) * len(
        S.table4.datasets
    )
    assert {"acanet18", "acanet18_no_accb", "acanet18_plain"} <= set(S.table4.models)
    assert {"ce", "mc"} <= set(S.table4.losses)
    if profile != "paper":
        assert len(S.table4.seeds) >= 2  # error bars need several seeds
    for name, s in t4.items():
        a = s.to_dict()
        b = ex.make_spec(S, name.split("-")[0], s.loss, s.dataset, S.seed).to_dict()
        a["train"].pop("seed"), b["train"].pop("seed")
        assert a == b
    # the complete and minus-ACCB models share their FCSA settings
    kw = S.model_kw
    assert (kw.get("acanet18") or {}) == (kw.get("acanet18_no_accb") or {})


def test_cpu_profiles_use_the_benchmark_only():
    for profile in ("smoke", "default"):
        S = profiles.settings(ex.NOTEBOOK, profile)
        for s in ex.specs(S).values():
            assert s.dataset == "synthetic"
            assert s.data_kw == S.benchmark.kw() and s.transform_kw["image_size"] == S.benchmark.image_size


def test_paper_profile_is_the_papers_setting():
    S = profiles.settings(ex.NOTEBOOK, "paper")
    grid = ex.specs(S)
    assert {s.dataset for s in grid.values()} == {"cub", "cars", "flowers102"}
    for s in grid.values():
        cfg = s.config
        assert s.transform == "acanet" and s.transform_kw == {"image_size": 224}
        assert cfg.optimizer == "sgd" and cfg.lr == 0.1 and cfg.epochs == 600
        assert cfg.schedule == "multistep" and tuple(cfg.milestones) == (200, 400) and cfg.gamma == 0.1
        assert s.model_kw in ({}, {"down": "conv"})  # full widths, FCSA everywhere with its default window
    # the full grids of Tables 2 and 3 on the three data sets, Table 4 on CUB only
    assert len(ex.table2_specs(S)) == 3 * 8 * 3
    assert {s.model for s in ex.table3_specs(S).values()} == set(ex.BACKBONES.values())
    assert {s.loss for s in ex.table2_specs(S).values()} == set(ex.LOSSES.values())
    assert {s.dataset for s in ex.table4_specs(S).values()} == {"cub"}


def test_numbers_file_has_the_papers_tables():
    n = ex.paper_numbers()
    assert n["datasets"] == ex.DATASETS
    t2 = n["table2"]
    assert set(t2) == set(ex.MODELS.values())
    assert set(t2["resnet18"]) == set(t2["vgg16"]) == set(ex.LOSSES.values())
    assert set(t2["acanet18"]) == {"ce", "focal", "mc"}  # the paper reports ACANet with these only
    for rows in t2.values():
        for cell in rows.values():
            assert set(cell) == set(ex.DATASETS.values()) and all(0 < v < 100 for v in cell.values())
    t3 = n["table3"]
    assert set(t3) == set(ex.BACKBONES.values())
    for m in ("resnet18", "vgg16", "acanet18"):  # Table 3's CE rows repeat Table 2's
        assert t3[m] == t2[m]["ce"]
    t4 = n["table4"]
    assert set(t4) == set(ex.ABLATION.values()) - set(ex.VARIANTS) and all(set(v) == {"ce", "mc"} for v in t4.values())
    for lo in ("ce", "mc"):
        assert t4["acanet18"][lo] == t2["acanet18"][lo]["cub"]  # complete structure = Table 2, CUB
        assert t4["acanet18"][lo] > t4["acanet18_no_accb"][lo] > t4["acanet18_plain"][lo]
    assert ex.paper_value("table2", "acanet18", "center", "cub") is None
    assert ex.paper_value("table3", "googlenet", "cars") == t3["googlenet"]["cars"]
    assert ex.paper_value("table4", "acanet18_plain", "mc") == t4["acanet18_plain"]["mc"]


def test_comparison_table_puts_ours_only_where_a_run_exists():
    S = profiles.settings(ex.NOTEBOOK, "smoke")
    key = ex.run_name("acanet18", "mc", ex.BENCHMARK, S.seed)
    fake = {"run_id": "abc123", "metrics": {"test_top1": 0.5}}
    rows = ex.comparison_rows("table2", S, {key: fake}, list(ex.MODELS.values()), list(ex.LOSSES.values()))
    long = viz.paper_vs_ours(rows)
    assert len(long) == len(ex.MODELS) * len(ex.LOSSES) * (len(ex.DATASETS) + 1)
    table = ex.wide(long)
    assert table.shape[0] == len(ex.MODELS) * len(ex.LOSSES)
    assert ("benchmark (ours)", "paper") not in table.columns  # the paper has no benchmark column
    cell = table.loc[("ACANet (ours)", "MC Loss")]
    assert cell[("benchmark (ours)", "ours")] == 50.0 and cell[("benchmark (ours)", "run")] == "abc123"
    assert cell[("CUB-200-2011", "paper")] == 62.74 and cell[("CUB-200-2011", "ours")] == viz.NOT_RUN
    assert ("CUB-200-2011", "run") not in table.columns  # no run there: the empty run column is dropped
    ours = pd.to_numeric(table[("benchmark (ours)", "ours")], errors="coerce")
    assert ours.notna().sum() == 1


def test_fcsa_window_flops_closed_form():
    # width 8, FCSA in stage 4 only, 3x3 window, 32 px: stage 4 reads a 2x2 map (stride 2 -> 1x1, all 9
    # offsets possible) then a 1x1 map (only the centre offset); C = 64: 4*64*9 + 4*64*1
    m = create_model("acanet18", 4, width=8, kernel_att=3, fcsa_stages=[4])
    assert ex.fcsa_window_flops(m, (3, 32, 32)) == 4 * 64 * 9 + 4 * 64 * 1
    assert ex.fcsa_window_flops(create_model("acanet18_plain", 4, width=8), (3, 32, 32)) == 0


def test_fcsa_attention_is_counted_once():
    # FCSA's attention is a masked SDPA now: complexity() counts it (at least the window's products),
    # so the separate count that notebook 01 adds to complexity() must be 0, not a second copy
    from fgic.cost import complexity

    kw = dict(width=8, kernel_att=3, fcsa_stages=[3, 4])
    m, size = create_model("acanet18", 4, **kw), (3, 64, 64)
    no_att = create_model("acanet18", 4, **kw)
    for f in no_att.modules():
        if isinstance(f, FCSA):
            f._attend = lambda q, kv, s=f.stride: q[:, :, ::s, ::s]  # same shapes, no products
    assert complexity(m, size)["flops"] - complexity(no_att, size)["flops"] >= ex.fcsa_window_flops(m, size) > 0
    assert ex.fcsa_attention_flops(m, size) == 0


@pytest.mark.parametrize("profile", ["default", "paper"])
def test_patchify_ablation_is_in_the_grid(profile):
    """Issue 10, item 14: complete ACANet with 1x1 stride-2 conv shortcuts instead of patchify, in Table 4."""
    S = profiles.settings(ex.NOTEBOOK, profile)
    assert "acanet18_convdown" in S.table4.models
    t4 = ex.table4_specs(S)
    for lo in S.table4.losses:
        for seed in S.table4.seeds:
            d = S.table4.datasets[0]
            conv = t4[ex.run_name("acanet18_convdown", lo, d, seed)]
            patch = t4[ex.run_name("acanet18", lo, d, seed)]
            assert conv.model == "acanet18" and conv.model_kw == {**patch.model_kw, "down": "conv"}
            a, b = conv.to_dict(), patch.to_dict()
            a.pop("model_kw"), b.pop("model_kw")
            assert a == b  # only the shortcut differs
    net = create_model(conv.model, 4, **conv.model_kw)
    assert not any("Patchify" in type(m).__name__ for m in net.modules())  # no patchify left
    assert ex.label_of(ex.ABLATION, "acanet18_convdown") != "acanet18_convdown"
    assert ex.paper_value("table4", "acanet18_convdown", "ce") is None  # not a row of the paper


def test_paper_profiles_train_on_the_full_official_training_split():
    """Issue 10, item 16: the papers train on the whole training split; the CPU profiles hold out 10 %."""
    from fgic.experiments import mixed_attention as mx
    from fgic.experiments import multi_attention as ma

    for mod in (ex, ma, mx):
        paper = mod.grid(profiles.settings(mod.NOTEBOOK, "paper"))
        assert paper and all(s.data_kw.get("val_fraction") == 0.0 for s in paper.values()), mod.NOTEBOOK
        for profile in ("smoke", "default"):
            for s in mod.grid(profiles.settings(mod.NOTEBOOK, profile)).values():
                assert "val_fraction" not in s.data_kw  # the default 10 % validation split, our addition
