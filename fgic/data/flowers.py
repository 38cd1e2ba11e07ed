"""Oxford 102 Flowers (Nilsback & Zisserman, 2008): 102 classes in torchvision's ``Flowers102`` layout.

The official split has 1,020 train, 1,020 val and 6,149 test images. As the papers use it, the
official train + val (2,040 images) form our training set ("trainval") and the official test set is
our test set; our "val" is the usual seeded stratified split of that training set, not the official
val list. Read with our own parser (torchvision checks md5 sums of the ``.mat`` files, which
hand-made or re-saved copies fail); ``download=True`` asks torchvision to fetch the files first.
Class names are torchvision's list.
"""

from __future__ import annotations

import numpy as np
from scipy.io import loadmat

from fgic.data.base import ImageListDataset, resolve_root
from fgic.data.cub import Sample, build_annotated, locate, require
from fgic.data.registry import register_dataset

FOLDER = "flowers-102"
LAYOUT = """\
  flowers-102/
    jpg/image_NNNNN.jpg          image ids 1-based, 5 digits
    imagelabels.mat              labels: class (1..102) of every image id
    setid.mat                    trnid, valid, tstid: image ids of each official split"""
HINT = (
    "Get 102flowers.tgz, imagelabels.mat and setid.mat from "
    "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ (or pass download=True when online)."
)


def _class_names(n: int) -> list[str]:
    from torchvision.datasets import Flowers102

    names = list(getattr(Flowers102, "classes", []))
    return names if len(names) == n else [f"class_{k + 1:03d}" for k in range(n)]


def flowers_samples(root, download: bool = False, name: str = "flowers102"):
    """The (official train + val, official test, classes) of Flowers-102."""
    if download and resolve_root(root) is not None:
        from torchvision.datasets import Flowers102

        Flowers102(str(resolve_root(root)), split="test", download=True)  # fetches all three files
    base = locate(name, root, FOLDER, "setid.mat", LAYOUT, HINT)
    require(name, base, ("jpg", "imagelabels.mat"), LAYOUT, HINT)
    labels = np.atleast_1d(loadmat(base / "imagelabels.mat", squeeze_me=True)["labels"]).astype(int) - 1
    ids = loadmat(base / "setid.mat", squeeze_me=True)

    def samples(keys) -> list[Sample]:
        return [
            (str(base / "jpg" / f"image_{i:05d}.jpg"), int(labels[i - 1]), {})
            for k in keys
            for i in np.atleast_1d(ids[k]).astype(int).tolist()
        ]

    return samples(("trnid", "valid")), samples(("tstid",)), _class_names(int(labels.max()) + 1)


@register_dataset("flowers102")
def flowers102(
    root=None, split="train", transform=None, val_fraction=0.1, seed=0, download: bool = False
) -> ImageListDataset:
    """Oxford 102 Flowers (Nilsback & Zisserman 2008): official train + val (2,040) / test (6,149)."""
    trainval, test, classes = flowers_samples(root, download)
    return build_annotated("flowers102", trainval, test, classes, split, transform, val_fraction, seed)
