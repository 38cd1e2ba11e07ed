"""What the ``folder`` and ``csv`` loaders of your own data share: checks, the split, the summary.

Both loaders produce the official lists ``train``, ``val`` (may be empty) and ``test`` of samples
``(path, class name, annotation)`` with a ``where`` string each (the folder or CSV row that gave it, for
errors). ``make_split`` checks them, maps class names to labels and picks the split:

- classes are the sorted class names of the training images (train + val);
- with an explicit val list: "train" = train, "val" = val, "trainval" = both; without one, val is
  carved out of train with the seeded stratified split every data set uses (``fgic.data.base``);
- errors name the offending folder / row / file: fewer than 2 classes, a val / test class with no
  training image, an image that cannot be opened (headers are read once per root and process).

A one-paragraph summary (classes, images per split, smallest class) is printed the first time a root
is loaded in a process.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from fgic.data.base import ImageListDataset, select_split
from fgic.data.cub import AnnotatedImageList

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

Sample = tuple[str, str, dict, str]  # (path, class name, annotation, where it came from)


class DatasetContentError(ValueError):
    """A row, folder or file of your own data set is wrong; the message names it."""


def check_images(name: str, samples: list[Sample]) -> None:
    """Open every image's header; raise naming the first unreadable one."""
    for path, _, _, where in tqdm(samples, desc=f"{name}: checking images", leave=False, mininterval=1.0):
        try:
            with Image.open(path) as im:
                im.size  # noqa: B018 (the header is parsed on open)
        except (UnidentifiedImageError, OSError) as e:
            raise DatasetContentError(f"{name}: {where}: {path} is not a readable image ({e})") from e


def check_classes(name: str, train: list[Sample], val: list[Sample], test: list[Sample]) -> list[str]:
    """The sorted class names of train + val; raise on < 2 classes or a test class with no training image."""
    classes = sorted({c for _, c, _, _ in train + val})
    if len(classes) < 2:
        raise DatasetContentError(
            f"{name}: {len(classes)} class(es) in the training images ({classes}); classification needs at least 2"
        )
    known = {c for _, c, _, _ in train}
    for split, rows in (("val", val), ("test", test)):
        for _, c, _, where in rows:
            if c not in known:
                raise DatasetContentError(
                    f"{name}: {where}: class {c!r} of the {split} split has no training image "
                    f"(every {split} class must also be in train)"
                )
    return classes


def summary(name: str, classes: list[str], train: list[Sample], val: list[Sample], test: list[Sample]) -> str:
    counts = Counter(c for _, c, _, _ in train + val)
    small, n_small = min(counts.items(), key=lambda kv: (kv[1], kv[0]))
    untested = sorted(set(classes) - {c for _, c, _, _ in test})
    val_txt = f"val {len(val)} (given)" if val else "val carved out of train"
    boxes = sum(1 for s in train + val + test if s[2].get("object"))
    text = (
        f"{name}: {len(classes)} classes; train {len(train)}, {val_txt}, test {len(test)} images; "
        f"smallest class {small!r} with {n_small} training images"
    )
    if boxes:
        text += f"; {boxes} images with boxes"
    if untested:
        text += f"; {len(untested)} class(es) without test images: {untested[:5]}"
    return text


def make_split(
    name: str,
    train: list[Sample],
    val: list[Sample],
    test: list[Sample],
    classes: list[str],
    split: str,
    transform,
    val_fraction: float,
    seed: int,
) -> ImageListDataset:
    """The requested split as an ``AnnotatedImageList`` (labels = index into ``classes``)."""
    label = {c: k for k, c in enumerate(classes)}

    def as_samples(rows: list[Sample]) -> list[tuple[str, int, dict]]:
        return [(p, label[c], ann) for p, c, ann, _ in rows]

    tr, va, te = as_samples(train), as_samples(val), as_samples(test)
    if va:
        chosen = {"train": tr, "val": va, "trainval": tr + va, "test": te}.get(split)
        if chosen is None:
            select_split(tr, te, split, val_fraction, seed)  # raises the usual error for an unknown split
    else:
        chosen = select_split(tr, te, split, val_fraction, seed)
    samples = [(p, y) for p, y, _ in chosen]
    boxes = {i: ann for i, (_, _, ann) in enumerate(chosen) if ann}
    return AnnotatedImageList(samples, classes, transform=transform, split=split, name=name, boxes=boxes)


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
