"""The experiment module of notebook 01 (ACANet): grid, paper numbers, tables and conclusions."""

import pytest

from fgic import profiles
from fgic.data.registry import list_datasets
from fgic.data.transforms import list_presets
from fgic.experiments import acanet as ex
from fgic.experiments import base
from fgic.losses import list_losses
from fgic.models import create_model, list_models
from fgic.nn.fcsa import FCSA
from tests.helpers import default3

TABLE4 = {"models": ["acanet18", "acanet18_no_accb", "acanet18_plain", "acanet18_convdown"], "losses": ["ce", "mc"],
          "datasets": ["benchmark"]}  # the whole Table 4 ablation (the main job runs it under CE only)



def rec(top1, k=10, epochs=3):
    """A finished run record as the tables read it."""
    hist = [{"epoch": e + 1, "train_loss": 1.0, "test_acc": top1} for e in range(epochs)]
    return {"status": "finished", "metrics": {"test_top1": top1}, "history": hist, "num_classes": k, "run_id": "x",
            "group": "smoke"}  # arithmetic only: the learn check is in test_health


def test_surface():
    assert base.check_surface(ex) == []
    assert ex.NOTEBOOK == "01_acanet"


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_grid_builds_for_every_profile(profile):
    S = profiles.settings(ex.NOTEBOOK, profile)
    grid = ex.grid(S)
    assert grid
    labels = {ex.label(m, lo): (m, lo) for m in ex.MODEL_LABELS for lo in ex.LOSS_LABELS}
    for name, s in grid.items():
        d, row, seed = base.parse_run_name(name)  # one run-name format
        assert d in {*S.datasets, *S.table4.datasets}, name
        assert seed in {*S.seeds, *S.table4_seeds()} and s.config.seed == seed, name
        model, loss = labels[row]
        assert ex.VARIANTS.get(model, (model,))[0] == s.model and s.loss == loss, name
        assert s.model in list_models() and s.loss in list_losses(), name
        assert s.dataset in list_datasets() and s.transform in list_presets(), name
        assert s.pretrained is False  # the paper trains from scratch
    assert len({s.run_id for s in grid.values()}) == len(grid)  # a run shared by two tables is one entry
    # the ablation: seeds differ only in the training seed; complete and minus ACCB share their FCSA settings
    d = S.table4.datasets[0]
    for m in S.table4.models:
        for lo in S.table4.losses:
            specs = [grid[base.run_name(d, ex.label(m, lo), s)].to_dict() for s in S.table4_seeds()]
            for x in specs:
                x["train"].pop("seed")
            assert all(x == specs[0] for x in specs)
    kw = S.model_kw
    assert (kw.get("acanet18") or {}) == (kw.get("acanet18_no_accb") or {})


def test_default_profile_trains_every_compared_row_with_three_seeds():
    S = default3(ex.NOTEBOOK, table4=TABLE4)
    assert S.seeds == [0, 1, 2] and S.table4_seeds() == [0, 1, 2]
    grid = ex.grid(S)
    seeds = base.seeds_by_row(grid)
    tables = ex.tables(S, {})
    assert {"table2/benchmark", "table2-losses/benchmark", "table3/benchmark", "table4/benchmark"} <= set(tables)
    for name, t in tables.items():
        for row in t.index:
            assert seeds[(name.split("/")[1], row)] == [0, 1, 2], (name, row)
    for row in ("ResNet18/CE", "ResNet18/MC", "ACANet/CE", "ACANet/MC"):
        assert row in tables["table2/benchmark"].index
    assert set(tables["table4/benchmark"].index) == {
        ex.label(m, lo) for m in ("acanet18", "acanet18_no_accb", "acanet18_plain", "acanet18_convdown")
        for lo in ("ce", "mc")}


def test_smoke_profile_has_one_seed():
    S = profiles.settings(ex.NOTEBOOK, "smoke")
    assert {base.parse_run_name(n)[2] for n in ex.grid(S)} == {0}


def test_cpu_profiles_use_the_benchmark_only():
    for profile in ("smoke", "default"):
        S = profiles.settings(ex.NOTEBOOK, profile)
        for name, s in ex.grid(S).items():
            assert base.parse_run_name(name)[0] == "benchmark" and s.dataset == "synthetic"
            assert s.data_kw == S.benchmark.kw() and s.transform_kw["image_size"] == S.benchmark.image_size
            assert "val_fraction" not in s.data_kw  # the default 10 % validation split, our addition


def test_paper_profile_is_the_papers_setting():
    S = profiles.settings(ex.NOTEBOOK, "paper")
    grid = ex.grid(S)
    assert {s.dataset for s in grid.values()} == {"cub", "cars", "flowers102"}
    for s in grid.values():
        cfg = s.config
        assert s.transform == "acanet" and s.transform_kw == {"image_size": 224}
        assert cfg.optimizer == "sgd" and cfg.lr == 0.1 and cfg.epochs == 600
        assert cfg.schedule == "multistep" and tuple(cfg.milestones) == (200, 400) and cfg.gamma == 0.1
        assert s.model_kw in ({}, {"down": "conv"})  # full widths, FCSA everywhere with its default window
        assert s.data_kw.get("val_fraction") == 0.0  # the whole official training split
    # Tables 2 and 3 in full on the three data sets (one seed), Table 4 on CUB only (three seeds)
    names = [base.parse_run_name(n) for n in grid]
    assert {s for d, r, s in names if r == "ACANet-ACCB/CE"} == {0, 1, 2}
    assert {d for d, r, _ in names if r == "ACANet-ACCB/CE"} == {"cub"}
    assert len(grid) == 3 * 8 * 3 + 4 * 3 + 4 * 2 * 3 - 2  # Table 4's seed-0 complete rows are Table 2's


def test_paper_numbers_are_the_papers_tables():
    n = ex.paper_numbers()
    assert list(n.columns) == base.PAPER_COLUMNS
    t2 = base.paper_column(n, "table2", "cub")
    assert len(t2) == 8 + 8 + 3  # ResNet18 and VGG16 with eight losses, ACANet with CE, Focal, MC
    assert t2["ACANet/MC"] == 62.74 and t2["ResNet18/CE"] == 52.50 and "ACANet/Center" not in t2
    assert base.paper_column(n, "table3", "cars")["GoogLeNet/CE"] == 71.21
    for d in ex.DATASETS.values():  # Table 3's CE rows repeat Table 2's
        t2d, t3d = base.paper_column(n, "table2", d), base.paper_column(n, "table3", d)
        assert all(t3d[r] == t2d[r] for r in ("ResNet18/CE", "VGG16/CE", "ACANet/CE"))
    t4 = base.paper_column(n, "table4", "cub")
    assert set(t4) == {ex.label(m, lo) for m in ("acanet18", "acanet18_no_accb", "acanet18_plain")
                       for lo in ("ce", "mc")}
    for lo in ("CE", "MC"):
        assert t4[f"ACANet/{lo}"] == t2[f"ACANet/{lo}"]  # complete structure = Table 2, CUB
        assert t4[f"ACANet/{lo}"] > t4[f"ACANet-ACCB/{lo}"] > t4[f"ACANet-(FCSA+ACCB)/{lo}"]
    assert ((n.value > 0) & (n.value < 100)).all()


def fake_records(S, values: dict) -> dict:
    """``{run name: record}`` of every grid run, ``values[(row, seed)]`` or 0.5."""
    out = {}
    for name in ex.grid(S):
        _, row, seed = base.parse_run_name(name)
        out[name] = rec(values.get((row, seed), 0.5))
    return out


def test_tables_give_the_hand_computed_mean_and_paired_difference():
    S = default3(ex.NOTEBOOK, table4=TABLE4)
    values = {("ACANet/CE", 0): 0.60, ("ACANet/CE", 1): 0.62, ("ACANet/CE", 2): 0.64,
              ("ACANet-ACCB/CE", 0): 0.58, ("ACANet-ACCB/CE", 1): 0.61, ("ACANet-ACCB/CE", 2): 0.60,
              ("ResNet18/CE", 0): 0.55, ("ResNet18/CE", 1): 0.56, ("ResNet18/CE", 2): 0.60}
    T = ex.tables(S, fake_records(S, values))
    t4 = T["table4/benchmark"]
    assert t4.loc["ACANet/CE", "mean"] == pytest.approx(62.0) and t4.loc["ACANet/CE", "std"] == pytest.approx(2.0)
    assert t4.loc["ACANet/CE", "verdict"] == "baseline" and t4.loc["ACANet-ACCB/CE", "vs"] == "ACANet/CE"
    # minus ACCB - complete per seed: -2, -1, -4 -> mean -7/3
    assert t4.loc["ACANet-ACCB/CE", "diff"] == pytest.approx(-7 / 3)
    assert t4.loc["ACANet-ACCB/CE", "paper"] == 52.31 and t4.loc["ACANet-ACCB/CE", "paper_diff"] == pytest.approx(-0.42)
    assert t4.loc["ACANet-ACCB/MC", "vs"] == "ACANet/MC"  # each loss against its own complete model
    t2 = T["table2/benchmark"]
    # ACANet - ResNet18 under CE: +5, +6, +4 -> +5; the paper column is CUB's
    assert t2.loc["ACANet/CE", "diff"] == pytest.approx(5.0) and t2.loc["ACANet/CE", "vs"] == "ResNet18/CE"
    assert t2.loc["ACANet/CE", "paper"] == 52.73 and "CUB-200-2011" in t2.attrs["caption"]
    assert t2.loc["ACANet/MC", "vs"] == "ResNet18/MC" and t2.loc["ACANet/MC", "diff"] == pytest.approx(0.0)
    tl = T["table2-losses/benchmark"]
    assert tl.loc["ACANet/MC", "vs"] == "ACANet/CE" and tl.loc["ACANet/MC", "diff"] == pytest.approx(-12.0)
    view = ex.view(t4)
    assert view.loc["ACANet-ACCB/CE", "diff [95 % CI]"].startswith("-2.3 [")
    assert view.loc["ACANet/CE", "vs"] == "" and view.loc["ACANet/CE", "ours"] == "62.0 +- 2.0 (n=3)"


def test_a_failed_seed_is_reported_not_averaged():
    S = default3(ex.NOTEBOOK, table4=TABLE4)
    records = fake_records(S, {("ACANet/MC", 1): 0.11})  # at chance + 1 point after 3 epochs: collapsed
    t4 = ex.tables(S, records)["table4/benchmark"]
    assert t4.loc["ACANet/MC", "n"] == 2
    assert t4.loc["ACANet/MC", "failed"].startswith("1 of 3 failed (seed 1: collapsed")
    assert t4.loc["ACANet-ACCB/MC", "n_paired"] == 2


def test_conclusions_are_computed_from_the_records():
    S = default3(ex.NOTEBOOK, table4=TABLE4)
    same = {(r, s): 0.5 + 0.01 * s for r in ("ACANet/CE", "ACANet-ACCB/CE") for s in (0, 1, 2)}
    a = {c.key: c for c in ex.conclusions(S, fake_records(S, same))}
    worse = {**same, **{("ACANet-ACCB/CE", s): 0.45 + 0.01 * s + 0.001 * s * s for s in (0, 1, 2)}}
    b = {c.key: c for c in ex.conclusions(S, fake_records(S, worse))}
    assert a.keys() == b.keys()  # stable keys (python -m fgic reproduce matches them)
    key = "table4/benchmark/ACANet-ACCB/CE"
    assert a[key].verdict == "no significant difference" and b[key].verdict == "reproduced"
    assert a[key].text != b[key].text and "-4.8 points" in b[key].text  # -5.0, -4.9, -4.6
    claim = "claim/acanet18_no_accb/benchmark/CE"
    assert a[claim].text.endswith(": no significant difference") and b[claim].text.endswith(": reproduced")
    for k in ("table2/benchmark/ACANet/CE", "table2/benchmark/ACANet/MC", "table2-losses/benchmark/ACANet/MC",
              "table2-losses/benchmark/ResNet18/MC", "claim/acanet-vs-resnet18/benchmark/CE",
              "claim/acanet18_convdown/benchmark/MC", "claim/fewer-parameters", "claim/real-data-sets"):
        assert k in a, k
    assert "not testable here" in a["claim/real-data-sets"].text and "paper" in a["claim/real-data-sets"].text
    assert "not testable here" in a["claim/acanet-vs-resnet18/benchmark/Focal"].text
    assert not any(k.startswith("table3/") for k in a)  # Table 3's rows are Table 2's CE rows here: said once
    assert a["claim/fewer-parameters"].verdict == "reproduced"


def test_patchify_claim_reads_the_direction_it_predicts():
    S = default3(ex.NOTEBOOK, table4=TABLE4)
    worse = {("ACANet conv-down/CE", s): 0.40 + 0.01 * s * s for s in (0, 1, 2)}
    better = {("ACANet conv-down/CE", s): 0.60 + 0.01 * s * s for s in (0, 1, 2)}
    key = "claim/acanet18_convdown/benchmark/CE"
    assert {c.key: c for c in ex.conclusions(S, fake_records(S, worse))}[key].verdict == "reproduced"
    assert {c.key: c for c in ex.conclusions(S, fake_records(S, better))}[key].verdict == "contradicted"


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
    grid = ex.grid(S)
    d = S.table4.datasets[0]
    for lo in S.table4.losses:
        for seed in S.table4_seeds():
            conv = grid[base.run_name(d, ex.label("acanet18_convdown", lo), seed)]
            patch = grid[base.run_name(d, ex.label("acanet18", lo), seed)]
            assert conv.model == "acanet18" and conv.model_kw == {**patch.model_kw, "down": "conv"}
            a, b = conv.to_dict(), patch.to_dict()
            a.pop("model_kw"), b.pop("model_kw")
            assert a == b  # only the shortcut differs
    net = create_model(conv.model, 4, **conv.model_kw)
    assert not any("Patchify" in type(m).__name__ for m in net.modules())  # no patchify left
    assert "ACANet conv-down/CE" not in base.paper_column(ex.paper_numbers(), "table4", "cub")  # not the paper's


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
