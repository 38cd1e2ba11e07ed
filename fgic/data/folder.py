"""Your own data set as a folder tree (the torchvision ImageFolder layout): ``build_dataset("folder", root=...)``.

::

    root/train/<class>/*.jpg    training images, one folder per class (the folder name is the class name)
    root/test/<class>/*.jpg     test images, same class names
    root/val/<class>/*.jpg      optional: a fixed validation split (else val is carved out of train)

Image files are ``.jpg .jpeg .png .bmp .gif .tif .tiff .webp`` (any case) anywhere below a class folder;
hidden and other files are ignored. Errors name the folder or file: a missing ``train`` / ``test`` folder,
a class folder without images, a val / test class missing from train, an unreadable image, fewer than 2
classes. ``python -m fgic make-folder-tree SRC DST`` turns a CUB-layout root into such a tree of links.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from fgic.data.base import resolve_root, root_error
from fgic.data.custom import (
    DatasetContentError,
    Sample,
    check_classes,
    check_images,
    is_image_file,
    make_split,
    summary,
)
from fgic.data.registry import register_dataset

LAYOUT = """\
  train/<class name>/*.jpg   one folder per class
  test/<class name>/*.jpg    the same class names
  val/<class name>/*.jpg     optional fixed validation split"""


def scan_split(name: str, folder: Path) -> list[Sample]:
    """Samples of one split folder: every image below each class folder, sorted."""
    out = []
    for cls in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
        files = sorted(p for p in cls.rglob("*") if is_image_file(p))
        if not files:
            raise DatasetContentError(f"{name}: class folder {cls} holds no image files")
        out.extend((str(p), cls.name, {}, f"folder {cls}") for p in files)
    if not out:
        raise DatasetContentError(f"{name}: {folder} has no class folders with images")
    return out


@lru_cache(maxsize=16)
def folder_samples(root: str, verify: bool = True) -> tuple[list, list, list, list[str]]:
    """(train, val, test, classes) of a folder tree, checked; prints the summary once per root."""
    name, base = "folder", Path(root)
    for req in ("train", "test"):
        if not (base / req).is_dir():
            raise root_error(name, base, f"missing the {req}/ folder", LAYOUT)
    train, test = scan_split(name, base / "train"), scan_split(name, base / "test")
    val = scan_split(name, base / "val") if (base / "val").is_dir() else []
    classes = check_classes(name, train, val, test)
    if verify:
        check_images(name, train + val + test)
    if os.environ.get("FGIC_QUIET_DATA") != "1":
        print(summary(f"{name} {base}", classes, train, val, test))
    return train, val, test, classes


@register_dataset("folder")
def folder(root=None, split="train", transform=None, val_fraction=0.1, seed=0, verify: bool = True):
    """Your own images in a folder tree: root/train/<class>/, root/test/<class>/ (optional val/).

    ``verify``: open every image's header once per root (catches unreadable files before training)."""
    base = resolve_root(root)
    if base is None:
        raise root_error("folder", root, "no root given", LAYOUT)
    train, val, test, classes = folder_samples(str(base.resolve()), verify)
    return make_split("folder", train, val, test, classes, split, transform, val_fraction, seed)
