"""Notebook 00 end to end (smoke profile, papermill) on a tiny generated folder tree: ``DATASET="folder"``."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks" / "00_benchmark_tour.ipynb"
CLASSES = ("red_bird", "green_bird", "blue_bird")


def write_tree(root: Path, n_train: int = 6, n_test: int = 3, size: int = 32) -> None:
    """``root/{train,test}/<class>/*.png``: noisy squares, one colour channel per class."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
                img[8:24, 8:24, c] = 220
                Image.fromarray(img).save(folder / f"{i}.png")


def outputs(nb: dict) -> str:
    return "".join(
        "".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
    )


def run_on_folder_tree(nb: Path, tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """Execute ``nb`` in the smoke profile with ``DATASET="folder"`` on a fresh tree; (data root, output notebook)."""
    pm = pytest.importorskip("papermill")
    data = tmp_path / "data"
    write_tree(data)
    for k, v in {
        "FGIC_RUNS": tmp_path / "runs",
        "FGIC_FIGURES": tmp_path / "figures",
        "FGIC_PROFILE": "smoke",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "TQDM_DISABLE": "1",
        "MPLBACKEND": "Agg",
    }.items():
        monkeypatch.setenv(k, str(v))
    out = tmp_path / f"{nb.stem}.out.ipynb"
    pm.execute_notebook(
        str(nb),
        str(out),
        parameters={"PROFILE": "smoke", "DATASET": "folder", "DATA_ROOT": str(data)},
        kernel_name="python3",
        cwd=str(nb.parent),
        progress_bar=False,
        record_timing=False,
        store_widget_state=False,
    )
    return data, out


def test_notebook_00_trains_on_a_folder_tree(tmp_path, monkeypatch):
    data, out = run_on_folder_tree(NB, tmp_path, monkeypatch)
    text = outputs(json.loads(out.read_text()))
    assert "folder: train" in text and f"{len(CLASSES)} classes" in text  # the data summary names our data
    assert text.count("skipped: ") == 3  # twins figure, twin confusion, placement check: benchmark only
    assert "localisation scores are not measured" in text
    records = list((tmp_path / "runs").rglob("record.json"))
    assert len(records) == 1
    rec = json.loads(records[0].read_text())
    assert rec["status"] == "finished" and rec["params"]["dataset"] == "folder"
    assert rec["params"]["data_kw"]["root"] == str(data) and rec["num_classes"] == len(CLASSES)
    assert (tmp_path / "figures" / "smoke" / "00_benchmark_tour_gradcam.png").is_file()  # smoke: a subfolder


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("FGIC_OWN_DATA_NOTEBOOKS") != "1",
    reason="about a minute per notebook on 2 CPU cores: set FGIC_OWN_DATA_NOTEBOOKS=1 to run 01-05 on a folder tree",
)
@pytest.mark.parametrize(
    "stem", ["01_acanet", "02_multi_attention", "03_mixed_attention", "04_gholm_net", "05_convnextv2_scra"]
)
def test_paper_notebooks_train_on_a_folder_tree(stem, tmp_path, monkeypatch):
    """Notebooks 01-05 (about a minute each): every run trains on the folder tree; box-bound cells skip."""
    run_on_folder_tree(ROOT / "notebooks" / f"{stem}.ipynb", tmp_path, monkeypatch)
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("record.json")]
    assert records and all(r["params"]["dataset"] == "folder" and r["num_classes"] == len(CLASSES) for r in records)
