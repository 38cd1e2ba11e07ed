"""Notebook 07, the CPU-sized study on real CUB images: the class-subset data set, the settings and grid, the
committed records shown when the data is absent (fake records, no data root), and the notebook itself in the
smoke profile on the real 100-class subset (skipped without it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from fgic import evidence, profiles, reproduce
from fgic.data import build_dataset, list_datasets
from fgic.data.fingerprint import clear as fingerprint_clear
from fgic.data.fingerprint import fingerprint
from fgic.experiments import base
from fgic.experiments import cub100_study as exp
from fgic.models import list_models
from fgic.settings import SettingsError

ROOT = Path(__file__).resolve().parents[1]
CUB100 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cub100"
NB = ROOT / "notebooks" / "07_cub100_cpu_study.ipynb"
CPU = "Test CPU 9000 @ 1 GHz"


def make_cub(root: Path, classes: int = 3, train: int = 4, test: int = 2) -> Path:
    """A tiny CUB_200_2011 tree: ``classes`` classes of ``train`` + ``test`` images, boxes for every image."""
    base_dir = root / "CUB_200_2011"
    rows = {"images.txt": [], "image_class_labels.txt": [], "train_test_split.txt": [], "bounding_boxes.txt": []}
    i = 0
    for c in range(1, classes + 1):
        for j in range(train + test):
            i += 1
            rel = f"{c:03d}.Bird_{c}/img_{j}.jpg"
            (base_dir / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (24 + c, 20 + j), (40 * c, 10 * j, 90)).save(base_dir / "images" / rel)
            rows["images.txt"].append(f"{i} {rel}")
            rows["image_class_labels.txt"].append(f"{i} {c}")
            rows["train_test_split.txt"].append(f"{i} {int(j < train)}")
            rows["bounding_boxes.txt"].append(f"{i} 1 2 {10 + c} 8")
    rows["classes.txt"] = [f"{c} {c:03d}.Bird_{c}" for c in range(1, classes + 1)]
    for name, lines in rows.items():
        (base_dir / name).write_text("\n".join(lines) + "\n")
    return root


# ------------------------------------------------------------------------------------------ the data set
def test_first_classes_keeps_the_first_k_classes_of_every_split(tmp_path):
    root = make_cub(tmp_path)
    assert "first_classes" in list_datasets()
    full = {s: build_dataset("cub", root=root, split=s, val_fraction=0.25) for s in ("train", "val", "test")}
    sub = {s: build_dataset("first_classes", root=root, split=s, of="cub", num_classes=2, val_fraction=0.25)
           for s in ("train", "val", "test")}
    for s in sub:
        assert sub[s].classes == full[s].classes[:2] == ["Bird 1", "Bird 2"]
        assert sub[s].samples == [x for x in full[s].samples if x[1] < 2]  # the wrapped split, filtered
        for j, (path, _) in enumerate(sub[s].samples):  # boxes follow their images
            assert sub[s].annotation(j)["object"] == full[s].annotation(full[s].samples.index(sub[s].samples[j]))[
                "object"], path
    assert [len(sub[s]) for s in ("train", "val", "test")] == [6, 2, 4]
    x, y = build_dataset("first_classes", root=root, split="test", of="cub", num_classes=2)[3]
    assert y == 1 and x.size[0] > 0
    with pytest.raises(ValueError, match="3 classes asked for|has 3"):
        build_dataset("first_classes", root=root, of="cub", num_classes=4)
    with pytest.raises(ValueError, match="num_classes"):
        build_dataset("first_classes", root=root, of="cub", num_classes=1)
    one, two = fingerprint("first_classes", {"of": "cub", "num_classes": 2, "root": str(root)}), fingerprint(
        "first_classes", {"of": "cub", "num_classes": 3, "root": str(root)})
    assert one["n"] == 12 and two["n"] == 18 and one["hash"] != two["hash"]


# ------------------------------------------------------------------------------------------ settings and grid
def test_the_surface_and_the_reproduce_entry():
    assert base.check_surface(exp) == []
    assert reproduce.experiment("07") is exp and exp.NOTEBOOK == NB.stem
    numbers = exp.paper_numbers()
    assert list(numbers.columns) == base.PAPER_COLUMNS and set(numbers.dataset) == {"cub"}
    assert base.paper_column(numbers, "000 Table 2 (CE)", "cub") == {"ResNet 18": 52.50, "ACANet": 52.73}


@pytest.mark.parametrize("profile, runs, classes", [("smoke", 8, 4), ("default", 12, 20), ("paper", 12, 20)])
def test_grid_pairs_every_attention_row_with_its_baseline(profile, runs, classes):
    S = profiles.settings(exp.NOTEBOOK, profile, overrides={})
    G = exp.grid(S)
    assert len(G) == runs == len(S.rows) * len(S.seeds) and S.num_classes == classes
    assert exp.pairs(S) == {"ResNet18": ["ResNet18", "ACANet18"], "ResNet50": ["ResNet50", "CA-ResNet50"]}
    for name, spec in G.items():
        _, row, seed = base.parse_run_name(name)
        assert spec.model == S.rows[row]["model"] and spec.model in list_models()
        assert spec.dataset == "first_classes" and spec.data_kw == {"of": "cub", "num_classes": classes}
        assert "root" not in spec.data_kw  # the data's files, not where they lie, are in the run id
        assert spec.train["seed"] == seed and spec.transform_kw == {"image_size": S.image_size}
        assert spec.train.get("threads") == (None if profile == "paper" else 1)
    widths = {S.rows[r]["model_kw"]["width"] for r in S.rows}
    assert len(widths) == 1  # one width for the whole study
    assert S.rows["ACANet18"]["model_kw"]["fcsa_stages"] == [4]  # FCSA in the last stage only
    if profile != "smoke":
        assert S.seeds == [0, 1, 2] and 112 <= S.image_size <= 128
        assert S.rows["ResNet50"]["model_kw"] == S.rows["CA-ResNet50"]["model_kw"]
        assert S.rows["ResNet18"]["model_kw"]["width"] == S.rows["ACANet18"]["model_kw"]["width"]


def test_bad_rows_are_named():
    with pytest.raises(SettingsError, match=r"rows\.ACANet18\.baseline = 'ResNet34' is not a row"):
        profiles.settings(exp.NOTEBOOK, "smoke", overrides={"rows.ACANet18": {"model": "acanet18",
                                                                              "baseline": "ResNet34"}})
    with pytest.raises(SettingsError, match=r"rows\.ResNet18\.widht is not a row key"):
        profiles.settings(exp.NOTEBOOK, "smoke", overrides={"rows.ResNet18": {"model": "resnet18", "widht": 8}})
    S = profiles.settings(exp.NOTEBOOK, "smoke", overrides="num_classes=10;seeds=[0, 1, 2]")
    assert len(exp.grid(S)) == 12 and all(s.data_kw["num_classes"] == 10 for s in exp.grid(S).values())


def test_find_root(tmp_path, monkeypatch):
    monkeypatch.delenv("FGIC_DATA", raising=False)
    assert exp.find_root(str(tmp_path / "nowhere")) is None  # an explicit root is the only one tried
    root = make_cub(tmp_path / "mine")
    assert exp.find_root(str(root)) == root.resolve()
    monkeypatch.setenv("FGIC_DATA", str(root))
    assert exp.find_root("") == root.resolve()


# ------------------------------------------------------------------------------------------ without the data
def fake_record(name, spec, top1: float, threads: int = 1, status: str = "finished") -> dict:
    return {
        "run_id": hashlib.sha1(name.encode()).hexdigest()[:12], "name": name, "group": "default",
        "params": spec.to_dict(),
        "status": status, "started": "2026-12-03T10:00:00+0000", "finished": "2026-12-03T10:20:00+0000",
        "metrics": {"test_top1": top1, "val_top1": top1}, "num_classes": 20, "wall_time": 300.0,
        "history": [{"epoch": e, "train_loss": 2.0 / e, "test_acc": top1 * e / 3} for e in (1, 2, 3)],
        "sizes": {"train": 498, "val": 57, "test": 600}, "env": {"cpu": CPU, "num_threads": threads},
        "data": {"hash": "0123456789ab", "what": "1155 files (path, size, label) under /data/cub100/images"},
    }


EFFECT = {"ACANet18": [0.10, 0.10, 0.10], "CA-ResNet50": [0.01, -0.01, 0.005]}  # added per seed to the baseline


def write_records(runs: Path, S, effect: dict[str, list[float]]) -> dict:
    """Fake finished records of ``S``'s grid in ``runs/default``: 0.40 + seed noise + ``effect[row][seed]``."""
    made = {}
    for name, spec in exp.grid(S).items():
        _, row, seed = base.parse_run_name(name)
        rec = fake_record(name, spec, 0.40 + 0.01 * seed ** 2 + effect.get(row, [0.0] * 3)[seed])
        d = runs / "default" / rec["run_id"]
        d.mkdir(parents=True)
        (d / "record.json").write_text(json.dumps(rec))
        made[name] = rec
    decoy = fake_record("cub:ResNet18:s0", exp.grid(S)["cub:ResNet18:s0"], 0.99)
    decoy["params"]["train"]["epochs"] = 99  # another spec under the same name: never shown
    (runs / "default" / "decoy").mkdir()
    (runs / "default" / "decoy" / "record.json").write_text(json.dumps(decoy))
    return made


def test_committed_records_are_found_by_spec_and_judged(tmp_path, monkeypatch):
    monkeypatch.setenv("FGIC_RUNS", str(tmp_path))
    S = profiles.settings(exp.NOTEBOOK, "default", overrides={})
    made = write_records(tmp_path, S, EFFECT)
    R = exp.committed(S)
    assert list(R) == list(exp.grid(S)) and all(R[n]["run_id"] == made[n]["run_id"] for n in R)
    assert exp.provenance(R).startswith(f"{CPU} with 1 thread (data: 1155 files")
    t = exp.tables(S, R)
    assert set(t) == {"vs ResNet18", "vs ResNet50"}
    acanet, ca = t["vs ResNet18"].loc["ACANet18"], t["vs ResNet50"].loc["CA-ResNet50"]
    assert acanet["diff"] == pytest.approx(10.0) and acanet["verdict"] == "reproduced"  # the paper: +0.23
    assert acanet["paper"] == 52.73 and ca["paper"] == 79.1 and ca["diff"] == pytest.approx(0.5 / 3)
    assert ca["verdict"] == "no significant difference" and ca["ci_low"] < 0 < ca["ci_high"]
    shown = exp.table(S, t)
    assert list(shown.index.get_level_values("row")) == ["ResNet18", "ACANet18", "ResNet50", "CA-ResNet50"]
    assert (shown["chance"] == 5.0).all()
    C = {c.key: c for c in exp.conclusions(S, R)}
    assert C["learned/ResNet18"].verdict == "above chance" and "chance 5.0 % (1/20)" in C["learned/ResNet18"].text
    assert C["vs ResNet18/ACANet18"].verdict == "reproduced" and C["scale"].verdict == "caveat"
    assert exp.wall_time(R) == {"span_min": 20.0, "worker_min": 60.0}
    # the smoke profile has no committed records: the default profile's are shown, with its settings
    smoke = profiles.settings(exp.NOTEBOOK, "smoke", overrides={})
    D, RD = exp.shown_records(smoke)
    assert D.profile == "default" and list(RD) == list(R)
    # a record that failed is counted, never averaged in
    bad = tmp_path / "default" / made["cub:CA-ResNet50:s2"]["run_id"] / "record.json"
    bad.write_text(json.dumps({**made["cub:CA-ResNet50:s2"], "metrics": {"test_top1": 0.05},
                               "finished": "2026-12-03T11:00:00+0000"}))
    t = exp.tables(S, exp.committed(S))["vs ResNet50"]
    assert t.loc["CA-ResNet50", "n"] == 2 and "1 of 3 failed" in t.loc["CA-ResNet50", "failed"]


def test_committed_records_without_weights_are_shown_not_retrained(tmp_path, monkeypatch):
    monkeypatch.setenv("FGIC_RUNS", str(tmp_path))
    S = profiles.settings(exp.NOTEBOOK, "default", overrides={})
    assert not exp.keep_committed(S)  # nothing committed: train
    made = write_records(tmp_path, S, EFFECT)
    assert exp.keep_committed(S)  # every run committed, none with weights (a fresh clone): show them
    assert not exp.keep_committed(profiles.settings(exp.NOTEBOOK, "default", overrides=["retrain_committed=true"]))
    (tmp_path / "default" / made["cub:ResNet18:s0"]["run_id"] / "record.json").unlink()
    assert not exp.keep_committed(S)  # a run without a record: train the grid (the others are reused if they can be)


def test_the_committed_default_records_are_this_grid(monkeypatch):
    """Every committed record of this study in runs/default/ is a run of the default grid (found by its spec:
    its run id needs the data), all of the grid is there, and each was made on one pinned thread."""
    monkeypatch.setenv("FGIC_RUNS", str(ROOT / "runs"))
    ours = [json.loads(f.read_text()) for f in sorted((ROOT / "runs" / "default").glob("*/record.json"))]
    ours = [r for r in ours if r.get("params", {}).get("dataset") == exp.SUBSET]
    if not ours:
        pytest.skip("no committed records of notebook 07 in runs/default/")
    S = profiles.settings(exp.NOTEBOOK, "default", overrides={})
    R = exp.committed(S)
    assert list(R) == list(exp.grid(S)), f"missing: {sorted(set(exp.grid(S)) - set(R))}"
    assert sorted(r["run_id"] for r in ours) == sorted(r["run_id"] for r in R.values()), "a stale record of 07"
    assert all(r["env"]["num_threads"] == 1 and r["status"] == "finished" for r in R.values())
    assert all(r["metrics"]["test_top1"] >= exp.LEARNED / S.num_classes for r in R.values())  # clearly learned


def run_notebook(tmp_path: Path, **params) -> str:
    """Execute notebook 07 with papermill; the text of every output."""
    pm = pytest.importorskip("papermill")
    out = tmp_path / "07.ipynb"
    pm.execute_notebook(str(NB), str(out), parameters=params, cwd=str(NB.parent), kernel_name="python3",
                        progress_bar=False)
    text = []
    for cell in json.loads(out.read_text())["cells"]:
        for o in cell.get("outputs", []):
            text.append("".join(o.get("text", "")))
            text.append("".join((o.get("data") or {}).get("text/markdown", "")))
            text.append("".join((o.get("data") or {}).get("text/plain", "")))
    return "\n".join(text)


@pytest.mark.slow
def test_notebook_without_the_data_shows_the_committed_records(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("FGIC_RUNS", str(runs))
    monkeypatch.setenv("FGIC_FIGURES", str(tmp_path / "figures"))
    monkeypatch.delenv("FGIC_DATA", raising=False)
    S = profiles.settings(exp.NOTEBOOK, "default", overrides={})
    write_records(runs, S, EFFECT)
    before = sorted(p.relative_to(runs) for p in runs.rglob("*"))
    text = run_notebook(tmp_path, PROFILE="smoke", DATA_ROOT=str(tmp_path / "no-cub-here"))
    assert f"cub100 not found here: showing the committed records made on {CPU} with 1 thread" in text
    assert "12 of 12 runs, from runs/default/ (the default profile: none of smoke)" in text
    assert "ACANet18 vs ResNet18: +10.0 points" in text and "reproduced" in text
    assert "skipped: predicting needs the data" in text
    assert sorted(p.relative_to(runs) for p in runs.rglob("*")) == before  # nothing trained, nothing written


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not (CUB100 / "CUB_200_2011" / "images.txt").is_file(),
                    reason=f"needs the real 100-class CUB subset at {CUB100}")
def test_notebook_trains_the_smoke_grid_on_the_real_subset(tmp_path, monkeypatch):
    monkeypatch.setenv("FGIC_FIGURES", str(tmp_path / "figures"))  # runs: the session's FGIC_RUNS (reused by nbval)
    text = run_notebook(tmp_path, PROFILE="smoke", DATA_ROOT=str(CUB100))
    assert "Training here** on cub's first 4 classes" in text and "8 runs, 0 failed" in text
    assert "not found here" not in text and "top-3 (probability)" in text
    S = profiles.settings(exp.NOTEBOOK, "smoke", overrides={})
    R = exp.committed(S)  # the smoke records just written (or reused), found by their spec
    assert list(R) == list(exp.grid(S)) and all(r["data"]["n"] == 120 + 113 for r in R.values())
    assert all(r["env"]["num_threads"] == 1 and r["sizes"]["train"] == 102 for r in R.values())
    monkeypatch.setenv("FGIC_DATA", str(CUB100))
    fingerprint_clear()
    try:
        assert all(exp.grid(S)[n].run_id == r["run_id"] for n, r in R.items())  # the same ids with the data here
    finally:
        monkeypatch.delenv("FGIC_DATA")
        fingerprint_clear()
    values, failed = evidence.seed_values(exp.cells(S, R))
    assert set(values) == set(S.rows) and not failed
