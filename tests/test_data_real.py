"""Real data-set loaders on tiny fake trees in their official layouts, plus the real CUB subset."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from fgic.data import DatasetRootError, build_dataset, list_datasets
from fgic.data.transforms import build_transform

C, N_TRAIN, N_TEST = 3, 5, 2  # classes, official train / test images per class
VAL = 0.2  # -> one val image per class
KINDS = ("RGB", "L", "CMYK", "RGBA")  # every tree holds each kind of image
CUB100 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cub100"


def write_image(path: Path, k: int, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """Image number ``k`` (mode cycles through KINDS; RGBA is PNG whatever the name says)."""
    mode = KINDS[k % len(KINDS)]
    size = size or (20 + k % 7, 14 + k % 5)
    color = {"RGB": (200, 30, 30), "L": 90, "CMYK": (0, 100, 200, 0), "RGBA": (10, 200, 10, 128)}[mode]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format="PNG" if mode == "RGBA" else "JPEG")
    return size


def items():
    """(class, index within class, official train?) for every image of a fake tree."""
    return [(c, j, j < N_TRAIN) for c in range(C) for j in range(N_TRAIN + N_TEST)]


def lines(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(map(str, r)) + "\n" for r in rows))


class Spec(dict):
    """What a builder made: name, root, classes, labels {path: label}, train/test paths, boxes, ..."""


def make_cub(root: Path) -> Spec:
    base = root / "CUB_200_2011"
    s = Spec(
        name="cub",
        root=root,
        classes=[f"Bird Name {c}" for c in range(C)],
        labels={},
        train=set(),
        test=set(),
        boxes={},
        parts={},
        key="CUB_200_2011/train_test_split.txt",
        word="CUB_200_2011",
        kw={},
    )
    imgs, labs, split, bbox, plocs = [], [], [], [], []
    for i, (c, j, tr) in enumerate(items(), start=1):
        rel = f"{c + 1:03d}.Bird_Name_{c}/Bird_{c}_{j}.{'png' if i % 4 == 0 else 'jpg'}"
        write_image(base / "images" / rel, i)
        path = str(base / "images" / rel)
        imgs.append((i, rel)), labs.append((i, c + 1)), split.append((i, int(tr)))
        bbox.append((i, 1.0 + c, 2.0, 5.5, 4.0))
        plocs += [(i, 1, 3.0, 4.0, 1), (i, 2, 0.0, 0.0, 0)]
        s["labels"][path] = c
        s["train" if tr else "test"].add(path)
        s["boxes"][path] = (1.0 + c, 2.0, 6.5 + c, 6.0)
        s["parts"][path] = {"left eye": (3.0, 4.0)}
    lines(base / "images.txt", imgs)
    lines(base / "classes.txt", [(c + 1, f"{c + 1:03d}.Bird_Name_{c}") for c in range(C)])
    lines(base / "image_class_labels.txt", labs)
    lines(base / "train_test_split.txt", split)
    lines(base / "bounding_boxes.txt", bbox)
    lines(base / "parts" / "parts.txt", [(1, "left eye"), (2, "beak")])
    lines(base / "parts" / "part_locs.txt", plocs)
    return s


def make_aircraft(root: Path) -> Spec:
    data = root / "fgvc-aircraft-2013b" / "data"
    classes = [f"Boeing 7{c}7-200" for c in range(C)]
    s = Spec(
        name="aircraft",
        root=root,
        classes=classes,
        labels={},
        train=set(),
        test=set(),
        boxes={},
        key="fgvc-aircraft-2013b/data/images_variant_test.txt",
        word="fgvc-aircraft-2013b",
        kw={},
    )
    rows = {True: [], False: []}
    boxes = []
    for i, (c, _j, tr) in enumerate(items()):
        iid = f"{1000000 + i:07d}"
        path = data / "images" / f"{iid}.jpg"
        write_image(path, i, size=(40, 50))
        rows[tr].append((iid, classes[c]))
        boxes.append((iid, 2 + c, 3, 30, 45))  # 1-based inclusive
        s["labels"][str(path)] = c
        s["train" if tr else "test"].add(str(path))
        s["boxes"][str(path)] = (1.0 + c, 2.0, 30.0, 45.0)
    lines(data / "variants.txt", [(n,) for n in classes])
    lines(data / "images_variant_trainval.txt", rows[True])
    lines(data / "images_variant_test.txt", rows[False])
    lines(data / "images_box.txt", boxes)
    return s


def _annos(entries) -> np.ndarray:
    fields = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")
    rec = np.zeros((1, len(entries)), dtype=[(f, "O") for f in fields])
    for k, e in enumerate(entries):
        rec[0, k] = e
    return rec


def make_cars(root: Path, nested: bool = False, test_in_devkit: bool = False) -> Spec:
    base = root / "stanford_cars"
    classes = [f"Audi A{c} Sedan 2012" for c in range(C)]
    s = Spec(
        name="cars",
        root=root,
        classes=classes,
        labels={},
        train=set(),
        test=set(),
        boxes={},
        key="stanford_cars/devkit/cars_train_annos.mat",
        word="stanford_cars",
        kw={},
    )
    annos = {True: [], False: []}
    for i, (c, _j, tr) in enumerate(items()):
        folder = "cars_train" if tr else "cars_test"
        fname = f"{i:05d}.jpg"
        path = base / folder / (folder if nested else "") / fname
        write_image(path, i)
        annos[tr].append((np.uint8(2), np.uint8(3 + c), np.uint8(12), np.uint8(11), np.uint8(c + 1), fname))
        s["labels"][str(path)] = c
        s["train" if tr else "test"].add(str(path))
        s["boxes"][str(path)] = (1.0, 2.0 + c, 12.0, 11.0)
    (base / "devkit").mkdir(parents=True)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(classes, dtype=object).reshape(1, -1)})
    savemat(base / "devkit" / "cars_train_annos.mat", {"annotations": _annos(annos[True])})
    test_dir = base / "devkit" if test_in_devkit else base
    savemat(test_dir / "cars_test_annos_withlabels.mat", {"annotations": _annos(annos[False])})
    return s


def _voc(path: Path, size, box) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    b = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    path.write_text(
        f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth>"
        f"</size><object><name>dog</name><bndbox>{b}</bndbox></object></annotation>"
    )


def make_dogs(root: Path, txt: bool = False) -> Spec:
    base = root / "stanford_dogs"
    folders = [f"n0208{c}620-Dog_breed_{c}" for c in range(C)]
    s = Spec(
        name="dogs",
        root=root,
        classes=[f"Dog breed {c}" for c in range(C)],
        labels={},
        train=set(),
        test=set(),
        boxes={},
        key=f"stanford_dogs/test_list.{'txt' if txt else 'mat'}",
        word="stanford_dogs",
        kw={},
    )
    lists = {True: [], False: []}
    for i, (c, _j, tr) in enumerate(items()):
        rel = f"{folders[c]}/n0208{c}620_{i}.jpg"
        size = write_image(base / "Images" / rel, i)
        lists[tr].append((rel, c + 1))
        path = str(base / "Images" / rel)
        s["labels"][path] = c
        s["train" if tr else "test"].add(path)
        if i != 1:  # one image without its annotation file
            _voc(base / "Annotation" / rel[: -len(".jpg")], size, (1, 2, 10 + c, 9))
            s["boxes"][path] = (1.0, 2.0, 10.0 + c, 9.0)
    for tr, name in ((True, "train"), (False, "test")):
        if txt:
            lines(base / f"{name}_list.txt", [(p,) for p, _ in lists[tr]])
        else:
            labels = [[y] for _, y in lists[tr]]
            cell = np.array([p for p, _ in lists[tr]], dtype=object).reshape(-1, 1)
            savemat(base / f"{name}_list.mat", {"file_list": cell, "annotation_list": cell, "labels": labels})
    return s


def make_flowers(root: Path) -> Spec:
    base = root / "flowers-102"
    s = Spec(
        name="flowers102",
        root=root,
        classes=[f"class_{c + 1:03d}" for c in range(C)],
        labels={},
        train=set(),
        test=set(),
        boxes={},
        key="flowers-102/imagelabels.mat",
        word="flowers-102",
        kw={},
    )
    labels, ids = [], {"trnid": [], "valid": [], "tstid": []}
    for i, (c, j, tr) in enumerate(items(), start=1):
        path = base / "jpg" / f"image_{i:05d}.jpg"
        write_image(path, i)
        labels.append(c + 1)
        ids["tstid" if not tr else ("trnid" if j % 2 else "valid")].append(i)
        s["labels"][str(path)] = c
        s["train" if tr else "test"].add(str(path))
    savemat(base / "imagelabels.mat", {"labels": np.array(labels).reshape(1, -1)})
    savemat(base / "setid.mat", {k: np.array(v).reshape(1, -1) for k, v in ids.items()})
    return s


def make_foodx(root: Path) -> Spec:
    base = root / "foodx251"
    s = Spec(
        name="foodx251",
        root=root,
        classes=[f"food_{c}" for c in range(C)],
        labels={},
        train=set(),
        test=set(),
        boxes={},
        key="foodx251/val_info.csv",
        word="foodx251",
        kw={},
    )
    csvs = {True: [], False: []}
    for i, (c, _j, tr) in enumerate(items()):
        folder = "train_set" if tr else "val_set"
        fname = f"{folder[:-4]}_{i:06d}.jpg"
        write_image(base / folder / fname, i)
        csvs[tr].append(f"{fname},{c}\n")
        s["labels"][str(base / folder / fname)] = c
        s["train" if tr else "test"].add(str(base / folder / fname))
    (base / "train_info.csv").write_text("".join(csvs[True]))
    (base / "val_info.csv").write_text("".join(csvs[False]))
    lines(base / "class_list.txt", [(c, f"food_{c}") for c in reversed(range(C))])
    return s


def make_combined(root: Path) -> Spec:
    cub, air = make_cub(root), make_aircraft(root)
    s = Spec(
        name="cub_aircraft",
        root=root,
        classes=cub["classes"] + air["classes"],
        train=cub["train"] | air["train"],
        test=cub["test"] | air["test"],
        boxes={**cub["boxes"], **air["boxes"]},
        key="fgvc-aircraft-2013b/data/variants.txt",
        word="CUB_200_2011",
        kw={},
    )
    s["labels"] = {**cub["labels"], **{p: y + C for p, y in air["labels"].items()}}
    return s


BUILDERS = [make_cub, make_aircraft, make_cars, make_dogs, make_flowers, make_foodx, make_combined]


@pytest.fixture(params=BUILDERS, ids=lambda b: b.__name__[5:])
def spec(request, tmp_path) -> Spec:
    return request.param(tmp_path)


def build(s: Spec, split: str, seed: int = 0, **kw):
    return build_dataset(s["name"], root=s["root"], split=split, val_fraction=VAL, seed=seed, **s["kw"], **kw)


def paths(ds) -> list[str]:
    return [p for p, _ in ds.samples]


def test_all_registered():
    assert {"cub", "cars", "aircraft", "dogs", "flowers102", "foodx251", "cub_aircraft"} <= set(list_datasets())


def test_split_sizes_and_disjointness(spec):
    n = len(spec["classes"])
    tv, te, tr, va = (build(spec, s) for s in ("trainval", "test", "train", "val"))
    assert set(paths(tv)) == spec["train"] and set(paths(te)) == spec["test"]
    assert len(va) == n and len(tr) == len(tv) - n  # one val image per class
    assert not set(paths(tr)) & set(paths(va)) and set(paths(tr)) | set(paths(va)) == spec["train"]
    assert sorted(va.targets) == list(range(n))  # stratified


def test_val_split_is_seeded(spec):
    assert paths(build(spec, "val", seed=3)) == paths(build(spec, "val", seed=3))
    assert any(paths(build(spec, "val", seed=s)) != paths(build(spec, "val", seed=3)) for s in range(4, 9))


def test_classes_labels_and_rgb_items(spec):
    tv = build(spec, "trainval", transform=build_transform("plain", train=False, image_size=16))
    assert tv.classes == spec["classes"] and tv.num_classes == len(spec["classes"])
    for p, y in tv.samples:
        assert y == spec["labels"][p] and 0 <= y < tv.num_classes
    modes = set()
    for split in ("trainval", "test"):
        raw = build(spec, split)
        for i, (p, _) in enumerate(raw.samples):
            with Image.open(p) as im:
                modes.add(im.mode)
            assert raw[i][0].mode == "RGB"
    assert modes == set(KINDS)  # grayscale, CMYK and RGBA files were all converted
    x, _ = tv[3]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32


def test_annotations(spec):
    for split in ("trainval", "test"):
        ds = build(spec, split)
        for i, (p, _) in enumerate(ds.samples):
            ann = ds.annotation(i)
            if p not in spec["boxes"]:
                assert ann == {}
                continue
            assert ann["object"] == pytest.approx(spec["boxes"][p])
            with Image.open(p) as im:
                assert tuple(ann["size"]) == im.size
            if "parts" in spec and p in spec["parts"]:
                assert ann["parts"] == spec["parts"][p]  # invisible parts left out


def test_missing_root_and_missing_file(spec, tmp_path, monkeypatch):
    with pytest.raises(DatasetRootError, match="Expected layout") as e:
        build_dataset(spec["name"], root=tmp_path / "nowhere")
    assert spec["word"] in str(e.value)
    monkeypatch.delenv("FGIC_DATA", raising=False)
    with pytest.raises(DatasetRootError, match="FGIC_DATA"):
        build_dataset(spec["name"])
    monkeypatch.setenv("FGIC_DATA", str(spec["root"]))
    assert len(build_dataset(spec["name"], split="test")) == len(spec["test"])
    os.remove(spec["root"] / spec["key"])
    with pytest.raises(DatasetRootError, match=Path(spec["key"]).name.replace(".", r"\.")):
        build(spec, "train")


def test_cars_mirror_variants(tmp_path):
    s = make_cars(tmp_path, nested=True, test_in_devkit=True)
    assert set(paths(build(s, "test"))) == s["test"] and set(paths(build(s, "trainval"))) == s["train"]
    with pytest.raises(DatasetRootError, match="Kaggle"):
        build_dataset("cars", root=tmp_path, download=True)


def test_dogs_text_lists(tmp_path):
    s = make_dogs(tmp_path, txt=True)
    tv = build(s, "trainval")
    assert set(paths(tv)) == s["train"] and all(y == s["labels"][p] for p, y in tv.samples)


def test_aircraft_banner_crop(tmp_path):
    s = make_aircraft(tmp_path)
    plain, cropped = build(s, "test"), build(s, "test", crop_banner=True)
    assert plain[0][0].size == (40, 50) and cropped[0][0].size == (40, 30)
    assert cropped.annotation(0)["size"] == (40, 30) and cropped.annotation(0)["object"][3] == 30


def test_combined_crops_only_aircraft(tmp_path):
    s = make_combined(tmp_path)
    ds = build(s, "test", crop_banner=True)
    for i, (p, y) in enumerate(ds.samples):
        with Image.open(p) as im:
            w, h = im.size
        assert ds[i][0].size == ((w, h - 20) if y >= C else (w, h))


@pytest.mark.data
@pytest.mark.skipif(not CUB100.is_dir(), reason=f"real CUB subset not found at {CUB100} (../shared/data/cub100)")
def test_cub100_real_subset():
    tv, te = (build_dataset("cub", root=CUB100, split=s) for s in ("trainval", "test"))
    assert (len(tv), len(te)) == (2903, 2999) and tv.num_classes == te.num_classes == 100
    assert set(tv.targets) == set(te.targets) == set(range(100))
    tr, va = (build_dataset("cub", root=CUB100 / "CUB_200_2011", split=s) for s in ("train", "val"))
    assert len(tr) + len(va) == 2903 and not set(paths(tr)) & set(paths(va))
    img, y = te[0]
    assert img.mode == "RGB" and img.size == (227, 227) and 0 <= y < 100
    assert tv.annotation(0) == {}  # the subset has no bounding_boxes.txt
