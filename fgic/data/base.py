"""What every data set shares: RGB image loading, an image-list data set, the seeded validation split.

Splits: ``"train"`` and ``"val"`` are disjoint, stratified, seeded parts of the official training set
(``val_fraction`` of each class is held out); ``"trainval"`` is the whole official training set;
``"test"`` is the official test set. Validation is reported separately from test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision.io as tio
from PIL import Image
from torch.utils.data import Dataset

from fgic.data.transforms import ImagePipeline, to_uint8_rgb

SPLITS = ("train", "val", "trainval", "test")


class DatasetRootError(FileNotFoundError):
    """A data-set root is missing or malformed; the message names the expected layout."""


def root_error(name: str, root, problem: str, layout: str, hint: str = "") -> DatasetRootError:
    """Build the one-paragraph error every loader raises for a missing or malformed root."""
    msg = (
        f"{name}: {problem} (root={root!s}). Expected layout under the root:\n{layout.rstrip()}\n"
        "Set the root with build_dataset(..., root=PATH) or the FGIC_DATA environment variable "
        "(the folder that contains the data set's own folder)."
    )
    return DatasetRootError(msg + (f"\n{hint}" if hint else ""))


def resolve_root(root: str | os.PathLike | None) -> Path | None:
    """``root`` or, if None, ``$FGIC_DATA`` (None when neither is set)."""
    root = root if root is not None else os.environ.get("FGIC_DATA")
    return Path(root).expanduser() if root else None


class ImageReadError(OSError):
    """An image file cannot be read; the message names the file."""


def _to_8bit(im: Image.Image) -> Image.Image:
    """Single-channel images of more than 8 bits as mode "L".

    I;16 (16-bit PNG / TIFF) and I (32-bit integer, how Pillow also opens 16-bit PNGs) are taken as
    16-bit intensities, 0..65535 -> 0..255 (values outside are clipped); F (32-bit float) as intensities
    in [0, 1]. Pillow's own ``convert("RGB")`` clips these to 0..255 instead, which makes a 16-bit
    image almost white.
    """
    a = np.asarray(im, dtype=np.float64)  # (H, W)
    scale = 255.0 if im.mode == "F" else 255.0 / 65535.0
    return Image.fromarray(np.clip(np.rint(a * scale), 0, 255).astype(np.uint8), "L")


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open any image as 3-channel RGB.

    L, P, CMYK, YCbCr: Pillow's conversion; LA, RGBA, PA and P with transparency: alpha composited on
    white; I;16, I and F: scaled to 8 bits first (``_to_8bit``). A file that cannot be read raises
    ``ImageReadError`` naming it.
    """
    try:
        with Image.open(path) as im:
            im.load()  # decode now: a truncated file fails here, with its name
            if im.mode.startswith("I") or im.mode == "F":
                im = _to_8bit(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))  # alpha composited on white
                return Image.alpha_composite(bg, im).convert("RGB")
            return im.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageReadError(
            f"cannot read image {path}: {type(e).__name__}: {e}. Expected a complete image file "
            "(JPEG, PNG, ...); replace or remove it from the data set."
        ) from e


def read_rgb(path: str | os.PathLike) -> torch.Tensor:
    """Any image file -> uint8 ``(3, H, W)`` tensor; JPEGs decoded by libjpeg-turbo, others by PIL."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\xff\xd8":  # JPEG
        try:
            return tio.decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=tio.ImageReadMode.RGB)
        except RuntimeError:  # an unusual JPEG variant: PIL reads more of them
            pass
    return to_uint8_rgb(load_rgb(path))


def stratified_split(targets: Sequence[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded per-class split of indices into (train, val); every class keeps >= 1 training image."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    targets = np.asarray(targets)
    train, val = [], []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        rng.shuffle(idx)
        n_val = min(int(round(val_fraction * len(idx))), len(idx) - 1)
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return sorted(train), sorted(val)


def select_split(
    trainval: list, test: list, split: str, val_fraction: float, seed: int, label_of: Callable = lambda s: s[1]
) -> list:
    """Pick ``split`` from the official (trainval, test) sample lists, carving val out of trainval."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "test":
        return test
    if split == "trainval":
        return trainval
    tr, va = stratified_split([label_of(s) for s in trainval], val_fraction, seed)
    return [trainval[i] for i in (tr if split == "train" else va)]


class ImageListDataset(Dataset):
    """``samples`` = [(path, label), ...]; items are ``(transform(image), label)``.

    ``boxes`` (optional) maps a sample index to annotations in original-image pixels, e.g.
    ``{"object": (x0, y0, x1, y1)}``; ``annotation(i)`` returns a copy. Loaders that know the image
    size add ``"size": (W, H)`` (``fgic.data.cub.AnnotatedImageList`` reads it from the file header).
    """

    def __init__(
        self,
        samples: list[tuple[str, int]],
        classes: list[str],
        transform: Callable | None = None,
        split: str = "train",
        name: str = "",
        boxes: dict[int, dict] | None = None,
    ):
        self.samples = samples
        self.classes = list(classes)
        self.transform = transform
        self.split = split
        self.name = name
        self.boxes = boxes or {}

    @property
    def targets(self) -> list[int]:
        return [s[1] for s in self.samples]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        if isinstance(self.transform, ImagePipeline):  # it takes uint8 tensors: skip PIL, decode JPEGs fast
            return self.transform(read_rgb(path)), label
        img = load_rgb(path)
        return (self.transform(img) if self.transform else img), label

    def annotation(self, i: int) -> dict:
        return dict(self.boxes.get(i, {}))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, split={self.split!r}, n={len(self)}, classes={self.num_classes})"
