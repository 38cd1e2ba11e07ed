"""Caltech-UCSD Birds-200-2011 (Wah et al., 2011), official train/test split, 200 species.

On disk (the official archive, ids 1-based, space separated)::

    CUB_200_2011/images/NNN.Class_Name/*.jpg, images.txt, classes.txt, image_class_labels.txt,
    train_test_split.txt (1 = train), optional bounding_boxes.txt and parts/{parts,part_locs}.txt

``root`` is the folder holding ``CUB_200_2011`` (or that folder itself). Class names drop the ``NNN.``
prefix and underscores. ``annotation(i)`` gives ``{"object": (x0, y0, x1, y1), "parts": {name: (x, y)},
"size": (W, H)}`` in original pixels when the optional files exist (only visible parts are listed).

This module also holds the small helpers every real loader shares: ``locate`` (find a data set's folder
under a root), ``AnnotatedImageList`` (annotations plus the image size) and ``build_annotated``
(official lists -> the requested split).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

from fgic.data.base import ImageListDataset, resolve_root, root_error, select_split
from fgic.data.registry import register_dataset

LAYOUT = """\
  CUB_200_2011/
    images/NNN.Class_Name/*.jpg
    images.txt                 <image_id> <relative path under images/>
    classes.txt                <class_id> <NNN.Class_Name>
    image_class_labels.txt     <image_id> <class_id>
    train_test_split.txt       <image_id> <1 = train, 0 = test>
    bounding_boxes.txt         optional: <image_id> <x> <y> <width> <height>
    parts/parts.txt, parts/part_locs.txt   optional part locations"""
HINT = "Get CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/ and extract it."
REQUIRED = ("images.txt", "classes.txt", "image_class_labels.txt", "train_test_split.txt")

Sample = tuple[str, int, dict]  # (path, label, annotation dict, possibly empty)


def locate(name: str, root, folder: str, marker: str, layout: str, hint: str = "") -> Path:
    """``root/folder`` (or ``root`` itself) when it contains ``marker``; else a DatasetRootError."""
    base = resolve_root(root)
    if base is None:
        raise root_error(name, root, "no data root given and $FGIC_DATA is not set", layout, hint)
    for cand in (base / folder, base):
        if (cand / marker).exists():
            return cand
    raise root_error(name, base, f"cannot find {folder}/{marker}", layout, hint)


def require(name: str, base: Path, files, layout: str, hint: str = "") -> None:
    """Raise a DatasetRootError naming the first of ``files`` (relative to ``base``) that is missing."""
    for f in files:
        if not (base / f).exists():
            raise root_error(name, base, f"missing {f}", layout, hint)


def read_table(path: Path, n: int) -> list[list[str]]:
    """Rows of a whitespace-separated text file, the last of ``n`` columns keeping inner spaces."""
    with open(path) as f:
        return [line.strip().split(maxsplit=n - 1) for line in f if line.strip()]


class AnnotatedImageList(ImageListDataset):
    """``ImageListDataset`` whose ``annotation(i)`` also reports the original image size ``(W, H)``."""

    def annotation(self, i: int) -> dict:
        ann = super().annotation(i)
        if ann and "size" not in ann:
            with Image.open(self.samples[i][0]) as im:  # reads the header only
                ann["size"] = im.size
        return ann


def build_annotated(
    name: str,
    trainval: list[Sample],
    test: list[Sample],
    classes: list[str],
    split: str,
    transform: Callable | None,
    val_fraction: float,
    seed: int,
    cls: type[ImageListDataset] = AnnotatedImageList,
    **kw,
) -> ImageListDataset:
    """Pick ``split`` (val carved out of ``trainval``) and wrap it with its annotations."""
    chosen = select_split(trainval, test, split, val_fraction, seed)
    samples = [(p, y) for p, y, _ in chosen]
    boxes = {i: ann for i, (_, _, ann) in enumerate(chosen) if ann}
    return cls(samples, classes, transform=transform, split=split, name=name, boxes=boxes, **kw)


def cub_samples(root, name: str = "cub") -> tuple[list[Sample], list[Sample], list[str]]:
    """The official (train, test, classes) of CUB-200-2011, with boxes/parts when present."""
    base = locate(name, root, "CUB_200_2011", "images.txt", LAYOUT, HINT)
    require(name, base, (*REQUIRED, "images"), LAYOUT, HINT)
    paths = {i: base / "images" / p for i, p in read_table(base / "images.txt", 2)}
    class_rows = read_table(base / "classes.txt", 2)
    label_of_id = {cid: k for k, (cid, _) in enumerate(class_rows)}
    classes = [c.split(".", 1)[-1].replace("_", " ") for _, c in class_rows]
    labels = {i: label_of_id[c] for i, c in read_table(base / "image_class_labels.txt", 2)}
    is_train = {i: s == "1" for i, s in read_table(base / "train_test_split.txt", 2)}
    anns: dict[str, dict] = {i: {} for i in paths}
    if (base / "bounding_boxes.txt").exists():
        for i, x, y, w, h in read_table(base / "bounding_boxes.txt", 5):
            x, y, w, h = float(x), float(y), float(w), float(h)
            anns[i]["object"] = (x, y, x + w, y + h)  # (x, y, width, height) -> corners
    if (base / "parts" / "part_locs.txt").exists() and (base / "parts" / "parts.txt").exists():
        part_names = dict(read_table(base / "parts" / "parts.txt", 2))
        for i, pid, x, y, visible in read_table(base / "parts" / "part_locs.txt", 5):
            if float(visible) > 0:
                anns[i].setdefault("parts", {})[part_names[pid]] = (float(x), float(y))
    train, test = [], []
    for i, p in paths.items():
        (train if is_train[i] else test).append((str(p), labels[i], anns[i]))
    return train, test, classes


@register_dataset("cub")
def cub(root=None, split="train", transform=None, val_fraction=0.1, seed=0) -> ImageListDataset:
    """CUB-200-2011 (Wah et al. 2011): 200 bird species, 5,994 train / 5,794 test, boxes and parts."""
    train, test, classes = cub_samples(root)
    return build_annotated("cub", train, test, classes, split, transform, val_fraction, seed)
