"""Your own data: the ``folder`` and ``csv`` loaders on generated trees and on the real CUB subset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from fgic.data import build_dataset
from fgic.data.custom import DatasetContentError
from fgic.data.transforms import build_transform

CUB100 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cub100"
needs_cub = pytest.mark.skipif(not CUB100.is_dir(), reason=f"the CUB subset is not at {CUB100}")


def image(path: Path, color=(200, 30, 30), size=(24, 18), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else 90).save(path)
    return path


def tree(root: Path, classes=("cat", "dog", "owl"), n_train=5, n_test=2, val=0) -> Path:
    for k, c in enumerate(classes):
        for j in range(n_train):
            image(root / "train" / c / f"{j}.jpg", (40 * k, 10 * j, 90))
        for j in range(n_test):
            image(root / "test" / c / f"t{j}.png", (40 * k, 5, 10 * j))
        for j in range(val):
            image(root / "val" / c / f"v{j}.jpg")
    return root


def test_folder_tree_splits_labels_and_summary(tmp_path, capsys):
    root = tree(tmp_path / "d")
    (root / "train" / "cat" / "notes.txt").write_text("ignored")
    tf = build_transform("plain", train=False, image_size=16)
    ds = {
        s: build_dataset("folder", root=root, split=s, transform=tf, val_fraction=0.2)
        for s in ("train", "val", "trainval", "test")
    }
    assert ds["train"].classes == ["cat", "dog", "owl"]
    assert (len(ds["train"]), len(ds["val"]), len(ds["trainval"]), len(ds["test"])) == (12, 3, 15, 6)
    assert not {p for p, _ in ds["train"].samples} & {p for p, _ in ds["val"].samples}
    x, y = ds["test"][0]
    assert x.shape == (3, 16, 16) and y == 0 and ds["test"].samples[0][0].endswith("cat/t0.png")
    out = capsys.readouterr().out
    assert "3 classes" in out and "train 15" in out and "test 6" in out and "smallest class 'cat' with 5" in out


def test_folder_tree_with_a_given_val_split(tmp_path):
    root = tree(tmp_path / "d", val=1)
    assert len(build_dataset("folder", root=root, split="val")) == 3
    assert len(build_dataset("folder", root=root, split="train")) == 15
    assert len(build_dataset("folder", root=root, split="trainval")) == 18


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda r: (r / "train" / "emu").mkdir(), r"class folder .*train/emu holds no image files"),
        (
            lambda r: image(r / "test" / "emu" / "a.jpg"),
            r"folder .*test/emu: class 'emu' of the test split has no training",
        ),
        (lambda r: (r / "train" / "dog" / "2.jpg").write_text("junk"), r"train/dog/2.jpg is not a readable image"),
        (lambda r: __import__("shutil").rmtree(r / "test"), r"missing the test/ folder"),
    ],
    ids=["empty-class", "test-class-not-in-train", "unreadable", "no-test-folder"],
)
def test_folder_errors_name_the_folder_or_file(tmp_path, breakage, message):
    root = tree(tmp_path / "d")
    breakage(root)
    with pytest.raises((DatasetContentError, FileNotFoundError), match=message):
        build_dataset("folder", root=root)


def test_folder_needs_two_classes(tmp_path):
    with pytest.raises(DatasetContentError, match="at least 2"):
        build_dataset("folder", root=tree(tmp_path / "d", classes=("cat",)))


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_with_header_split_and_boxes(tmp_path):
    rows = ["path,label,split,x0,y0,x1,y1"]
    for k, c in enumerate(["a", "b"]):
        for j in range(4):
            image(tmp_path / "img" / f"{c}{j}.jpg", (100 * k, 20 * j, 0), size=(40, 30))
            split = "test" if j == 3 else ("val" if j == 2 else "train")
            rows.append(f"img/{c}{j}.jpg,{c},{split},2,3,20,25" if j % 2 == 0 else f"img/{c}{j}.jpg,{c},{split},,,,")
    write_csv(tmp_path / "labels.csv", rows)
    tr = build_dataset("csv", root=tmp_path, file="labels.csv", split="train")
    te = build_dataset("csv", root=tmp_path, file="labels.csv", split="test")
    va = build_dataset("csv", root=tmp_path, file="labels.csv", split="val")
    assert tr.classes == ["a", "b"] and (len(tr), len(va), len(te)) == (4, 2, 2)
    assert tr.annotation(0) == {"object": (2.0, 3.0, 20.0, 25.0), "size": (40, 30)}
    assert tr.annotation(1) == {}  # empty box cells: no box


def test_tsv_without_header_or_split_column(tmp_path):
    rows = []
    for c in ["x", "y", "z"]:
        for j in range(5):
            image(tmp_path / c / f"{j}.png")
            rows.append(f"{c}/{j}.png\t{c}")
    f = write_csv(tmp_path / "list.tsv", rows)
    sizes = {s: len(build_dataset("csv", file=str(f), split=s, test_fraction=0.2)) for s in ("trainval", "test")}
    assert sizes == {"trainval": 12, "test": 3}  # one test image per class; the root defaults to the CSV's folder


@pytest.mark.parametrize(
    "row, message",
    [
        ("img/missing.jpg,a,train", "line 4: image file .*missing.jpg not found"),
        ("img/a0.jpg,,train", "line 4: empty label"),
        ("img/a0.jpg,a,holdout", "line 4: split 'holdout' is not train, val or test"),
        ("img/a0.jpg,c,test", "line 4: class 'c' of the test split has no training image"),
        ("img/bad.jpg,a,train", r"line 4: .*bad.jpg is not a readable image"),
        ("img/a0.jpg,a", "line 4: 2 cells, expected 3"),
    ],
    ids=["missing-file", "empty-label", "bad-split", "label-missing-from-train", "unreadable", "short-row"],
)
def test_csv_errors_name_the_row(tmp_path, row, message):
    image(tmp_path / "img" / "a0.jpg")
    image(tmp_path / "img" / "b0.jpg")
    (tmp_path / "img" / "bad.jpg").write_text("not a jpeg")
    write_csv(tmp_path / "t.csv", ["path,label,split", "img/a0.jpg,a,train", "img/b0.jpg,b,train", row])
    with pytest.raises(DatasetContentError, match=message):
        build_dataset("csv", root=tmp_path, file="t.csv")


def test_csv_bad_box_and_one_class(tmp_path):
    image(tmp_path / "a.jpg")
    write_csv(tmp_path / "b.csv", ["path,label,x0,y0,x1,y1", "a.jpg,a,5,5,1,9", "a.jpg,b,1,1,2,2"])
    with pytest.raises(DatasetContentError, match="line 2: box .* is empty"):
        build_dataset("csv", root=tmp_path, file="b.csv")
    write_csv(tmp_path / "c.csv", ["path,label", "a.jpg,a", "a.jpg,a"])
    with pytest.raises(DatasetContentError, match="at least 2"):
        build_dataset("csv", root=tmp_path, file="c.csv")


@needs_cub
def test_cub100_as_a_folder_tree_made_by_the_command(tmp_path):
    """The README's worked example: cub100 -> a folder tree of links -> build_dataset("folder")."""
    from fgic.__main__ import main

    dst = tmp_path / "cub100-folder"
    assert main(["make-folder-tree", str(CUB100), str(dst)]) == 0
    cub = {s: build_dataset("cub", root=CUB100, split=s) for s in ("train", "val", "test")}
    fold = {s: build_dataset("folder", root=dst, split=s) for s in ("train", "val", "test")}
    assert len(fold["train"].classes) == len(cub["train"].classes) == 100
    assert {s: len(d) for s, d in fold.items()} == {s: len(d) for s, d in cub.items()}
    # the same images with the same labels (the folder names sort as CUB's class ids)
    as_set = lambda d: {(Path(p).name, y) for p, y in d.samples}
    assert as_set(fold["test"]) == as_set(cub["test"])
    assert (dst / "train").is_dir() and next((dst / "train").rglob("*.jpg")).is_symlink()
    x, _ = build_dataset("folder", root=dst, split="test", transform=build_transform("plain", False, 32))[0]
    assert x.shape == (3, 32, 32) and torch.isfinite(x).all()


@needs_cub
def test_cub100_as_a_csv(tmp_path):
    lines = ["path,label,split"]
    test_ds = build_dataset("cub", root=CUB100, split="test")
    train_ds = build_dataset("cub", root=CUB100, split="trainval")
    for ds, split in ((train_ds, "train"), (test_ds, "test")):
        lines += [f"{p},{ds.classes[y].replace(' ', '_')},{split}" for p, y in ds.samples]
    f = write_csv(tmp_path / "cub100.csv", lines)
    csv_test = build_dataset("csv", file=str(f), split="test")
    assert len(csv_test.classes) == 100 and len(csv_test) == len(test_ds)
    assert len(build_dataset("csv", file=str(f), split="trainval")) == len(train_ds)


def test_settings_take_your_own_data_and_a_run_trains_on_it(tmp_path, monkeypatch):
    from fgic import profiles, runs
    from fgic.runs import RunSpec

    root = tree(tmp_path / "d", n_train=4)
    S = profiles.settings("01_acanet", "smoke")
    assert S.data is None and profiles.data_source(S)[0] == "synthetic"
    monkeypatch.setenv("FGIC_DATASET", "folder")
    monkeypatch.setenv("FGIC_DATA_ROOT", str(root))
    S = profiles.settings("01_acanet", "smoke")
    name, data_kw, size = profiles.data_source(S)
    assert (name, data_kw, size) == ("folder", {"root": str(root)}, S.benchmark.image_size)
    assert profiles.settings("01_acanet", "smoke", image_size=48).data.image_size == 48
    with pytest.raises(ValueError, match="unknown data set 'nosuch'"):
        profiles.settings("01_acanet", "smoke", dataset="nosuch")
    with pytest.raises(ValueError, match="needs data_file"):
        profiles.settings("01_acanet", "smoke", dataset="csv")

    monkeypatch.setenv("FGIC_RUNS", str(tmp_path / "runs"))
    spec = RunSpec(
        model="resnet18",
        model_kw={"width": 8},
        dataset=name,
        data_kw=data_kw,
        transform_kw={"image_size": size},
        train={"epochs": 1, "batch_size": 4, "lr": 0.05, "accelerator": "cpu"},
    )
    rec = runs.train(spec, group="own", progress=False)
    assert rec["status"] == "finished" and rec["classes"] == ["cat", "dog", "owl"] and rec["sizes"]["test"] == 6
