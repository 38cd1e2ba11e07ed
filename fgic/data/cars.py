"""Stanford Cars (Krause et al., 2013): 196 classes, official 8,144 train / 8,041 test images.

Reads torchvision's ``StanfordCars`` layout (``stanford_cars/`` with the devkit ``.mat`` files) with
our own parser so the boxes and the seeded validation split come along. The original download URL
(ai.stanford.edu/~jkrause/cars) is dead and torchvision's ``download=True`` only raises, so the files
must be fetched by hand: the images from the Kaggle mirror ``jessicali9530/stanford-cars-dataset``,
the devkit and ``cars_test_annos_withlabels.mat`` from the attachments of pytorch/vision issue #7545.
Two common deviations of those mirrors are accepted: the image folders nested one level deeper
(``cars_train/cars_train/``) and ``cars_test_annos_withlabels.mat`` inside ``devkit/``.

Boxes come from the ``bbox_x1 .. bbox_y2`` fields of the annotation files (1-based inclusive
pixels), reported 0-based half-open as ``{"object": (x0, y0, x1, y1), "size": (W, H)}``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from fgic.data.base import ImageListDataset, root_error
from fgic.data.cub import Sample, build_annotated, locate, require
from fgic.data.registry import register_dataset

FOLDER = "stanford_cars"
LAYOUT = """\
  stanford_cars/
    devkit/cars_meta.mat               class_names (196 names)
    devkit/cars_train_annos.mat        annotations: bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, fname
    cars_test_annos_withlabels.mat     the same fields for the test images (also accepted in devkit/)
    cars_train/*.jpg
    cars_test/*.jpg"""
HINT = (
    "The original Stanford URL is dead and torchvision's download=True does not work: take the images "
    "from the Kaggle mirror jessicali9530/stanford-cars-dataset and the devkit plus "
    "cars_test_annos_withlabels.mat from https://github.com/pytorch/vision/issues/7545."
)


def _image_dir(base: Path, name: str) -> Path:
    nested = base / name / name  # some mirrors nest the folder once more
    return nested if nested.is_dir() else base / name


def _read_annos(path: Path, images: Path) -> list[Sample]:
    annos = np.atleast_1d(loadmat(path, squeeze_me=True)["annotations"])
    out = []
    for a in annos:
        box = tuple(float(a[k]) for k in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"))
        box = (box[0] - 1, box[1] - 1, box[2], box[3])  # 1-based inclusive -> 0-based half-open
        out.append((str(images / str(a["fname"])), int(a["class"]) - 1, {"object": box}))
    return out


def cars_samples(root, name: str = "cars") -> tuple[list[Sample], list[Sample], list[str]]:
    """The official (train, test, classes) of Stanford Cars with boxes."""
    base = locate(name, root, FOLDER, "devkit", LAYOUT, HINT)
    require(
        name,
        base,
        ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_train", "cars_test"),
        LAYOUT,
        HINT,
    )
    test_mat = next(
        (
            p
            for p in (
                base / "cars_test_annos_withlabels.mat",
                base / "devkit" / "cars_test_annos_withlabels.mat",
            )
            if p.exists()
        ),
        None,
    )
    if test_mat is None:
        raise root_error(name, base, "missing cars_test_annos_withlabels.mat", LAYOUT, HINT)
    classes = [
        str(c) for c in np.atleast_1d(loadmat(base / "devkit" / "cars_meta.mat", squeeze_me=True)["class_names"])
    ]
    train = _read_annos(base / "devkit" / "cars_train_annos.mat", _image_dir(base, "cars_train"))
    test = _read_annos(test_mat, _image_dir(base, "cars_test"))
    return train, test, classes


@register_dataset("cars")
def cars(
    root=None, split="train", transform=None, val_fraction=0.1, seed=0, download: bool = False
) -> ImageListDataset:
    """Stanford Cars (Krause et al. 2013): 196 classes, 8,144 train / 8,041 test, with boxes."""
    if download:
        raise root_error("cars", root, "download=True is not possible (the original URL is dead)", LAYOUT, HINT)
    train, test, classes = cars_samples(root)
    return build_annotated("cars", train, test, classes, split, transform, val_fraction, seed)
