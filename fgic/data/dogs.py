"""Stanford Dogs (Khosla et al., 2011): 120 breeds, official 12,000 train / 8,580 test images.

Lists come from the official ``train_list.mat`` / ``test_list.mat`` (``file_list`` cell of paths
relative to ``Images/``); plain-text ``train_list.txt`` / ``test_list.txt`` with one such path per line
are accepted instead. Labels are the breed folders in sorted order, which is the official 1..120
numbering shifted to 0-based; class names drop the WordNet id (``n02085620-Chihuahua`` -> ``Chihuahua``).

Boxes are optional: when ``Annotation/<breed>/<image stem>`` (PASCAL-VOC style XML) exists,
``annotation(i)`` parses it on demand and returns ``{"object": first box, "objects": all boxes,
"size": (W, H)}``, boxes as stored in the XML (``xmin ymin xmax ymax`` pixels).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import loadmat

from fgic.data.base import ImageListDataset, root_error
from fgic.data.cub import Sample, build_annotated, locate
from fgic.data.registry import register_dataset

FOLDER = "stanford_dogs"
LAYOUT = """\
  stanford_dogs/
    Images/<wnid>-<breed>/*.jpg
    train_list.mat, test_list.mat      file_list: paths relative to Images/ (or train_list.txt, test_list.txt)
    Annotation/<wnid>-<breed>/<stem>   optional: PASCAL-VOC style XML boxes"""
HINT = (
    "Get images.tar, annotation.tar and lists.tar from http://vision.stanford.edu/aditya86/ImageNetDogs/ "
    "and extract them into stanford_dogs/."
)


def _read_list(base: Path, split: str, name: str) -> list[str]:
    mat, txt = base / f"{split}_list.mat", base / f"{split}_list.txt"
    if mat.exists():
        return [str(p) for p in np.atleast_1d(loadmat(mat, squeeze_me=True)["file_list"])]
    if txt.exists():
        with open(txt) as f:
            return [line.split()[0] for line in f if line.strip()]
    raise root_error(name, base, f"missing {split}_list.mat (or {split}_list.txt)", LAYOUT, HINT)


def parse_voc(path: str | Path) -> dict:
    """Boxes and image size from one PASCAL-VOC style XML file."""
    tree = ET.parse(path).getroot()
    boxes = [
        tuple(float(o.find(f"bndbox/{k}").text) for k in ("xmin", "ymin", "xmax", "ymax")) for o in tree.iter("object")
    ]
    ann = {"object": boxes[0], "objects": boxes} if boxes else {}
    w, h = (int(tree.findtext(f"size/{k}", "0")) for k in ("width", "height"))
    if ann and w > 0 and h > 0:
        ann["size"] = (w, h)
    return ann


class DogsDataset(ImageListDataset):
    """Stanford Dogs; ``boxes`` maps a sample to ``{"xml": path}``, parsed when asked for."""

    def annotation(self, i: int) -> dict:
        xml = self.boxes.get(i, {}).get("xml")
        if xml is None or not Path(xml).exists():
            return {}
        ann = parse_voc(xml)
        if ann and "size" not in ann:
            with Image.open(self.samples[i][0]) as im:  # header only
                ann["size"] = im.size
        return ann


def dogs_samples(root, name: str = "dogs") -> tuple[list[Sample], list[Sample], list[str]]:
    """The official (train, test, classes) of Stanford Dogs."""
    base = locate(name, root, FOLDER, "Images", LAYOUT, HINT)
    lists = {s: _read_list(base, s, name) for s in ("train", "test")}
    folders = sorted({p.split("/")[0] for paths in lists.values() for p in paths})
    label_of = {d: k for k, d in enumerate(folders)}
    classes = [d.split("-", 1)[-1].replace("_", " ") for d in folders]
    ann_dir = base / "Annotation"
    out = {}
    for s, paths in lists.items():
        out[s] = [
            (
                str(base / "Images" / p),
                label_of[p.split("/")[0]],
                {"xml": str(ann_dir / Path(p).with_suffix(""))} if ann_dir.is_dir() else {},
            )
            for p in paths
        ]
    return out["train"], out["test"], classes


@register_dataset("dogs")
def dogs(root=None, split="train", transform=None, val_fraction=0.1, seed=0) -> ImageListDataset:
    """Stanford Dogs (Khosla et al. 2011): 120 breeds, 12,000 train / 8,580 test, optional boxes."""
    train, test, classes = dogs_samples(root)
    return build_annotated("dogs", train, test, classes, split, transform, val_fraction, seed, cls=DogsDataset)
