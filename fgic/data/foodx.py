"""FoodX-251 (Kaur et al., 2019): 251 food classes, 118,475 train and 11,994 public val images.

The labels of the official test set are hidden (it served the iFood 2019 challenge), so, as the SCRA
paper does, the public val set is our **test** set; "train"/"val" are the seeded stratified split of
the official train set. Lists are ``<image name>,<label>`` csv lines (a header line is skipped if
present); ``class_list.txt`` has ``<label> <name>`` lines. No boxes.
"""

from __future__ import annotations

import csv
from pathlib import Path

from fgic.data.base import ImageListDataset
from fgic.data.cub import Sample, build_annotated, locate, read_table, require
from fgic.data.registry import register_dataset

FOLDER = "foodx251"
LAYOUT = """\
  foodx251/
    class_list.txt     <label> <class name>, labels 0..250
    train_info.csv     <image name>,<label>
    val_info.csv       <image name>,<label>   (the public val set, used as our test set)
    train_set/*.jpg
    val_set/*.jpg"""
HINT = (
    "Get annot.tar, train_set.tar.gz and val_set.tar.gz from https://github.com/karansikka1/iFood_2019 "
    "and extract them into foodx251/ (the test labels are not public)."
)


def _read_csv(path: Path, images: Path) -> list[Sample]:
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if len(r) >= 2 and r[1].strip().isdigit()]  # skips a header
    return [(str(images / r[0].strip()), int(r[1]), {}) for r in rows]


def foodx_samples(root, name: str = "foodx251") -> tuple[list[Sample], list[Sample], list[str]]:
    """The (official train, public val as test, classes) of FoodX-251."""
    base = locate(name, root, FOLDER, "class_list.txt", LAYOUT, HINT)
    require(name, base, ("train_info.csv", "val_info.csv", "train_set", "val_set"), LAYOUT, HINT)
    rows = sorted((int(k), c) for k, c in read_table(base / "class_list.txt", 2))
    classes = [c for _, c in rows]
    return (
        _read_csv(base / "train_info.csv", base / "train_set"),
        _read_csv(base / "val_info.csv", base / "val_set"),
        classes,
    )


@register_dataset("foodx251")
def foodx251(root=None, split="train", transform=None, val_fraction=0.1, seed=0) -> ImageListDataset:
    """FoodX-251 (Kaur et al. 2019): 251 food classes; the public val set is the test set."""
    train, test, classes = foodx_samples(root)
    return build_annotated("foodx251", train, test, classes, split, transform, val_fraction, seed)
