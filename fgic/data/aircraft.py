"""FGVC-Aircraft (Maji et al., 2013), variant level (100 classes), official trainval (6,667) vs test (3,333).

Reads torchvision's ``FGVCAircraft`` layout (the unpacked ``fgvc-aircraft-2013b`` archive) with our own
parser, so the annotations and the seeded validation split come along; ``download=True`` asks
torchvision to fetch and unpack the archive first (users online only).

Every image carries a copyright banner about 20 px high along its bottom edge. Like torchvision, we
keep it by default; ``crop_banner=True`` removes the bottom 20 rows before the transform. Boxes come
from ``images_box.txt`` (1-based inclusive ``xmin ymin xmax ymax``), reported 0-based half-open.
``annotation_level`` may also be ``"family"`` (70 classes) or ``"manufacturer"`` (30 classes).
"""

from __future__ import annotations

from fgic.data.base import ImageListDataset, load_rgb, resolve_root
from fgic.data.cub import AnnotatedImageList, Sample, build_annotated, locate, read_table, require
from fgic.data.registry import register_dataset

FOLDER = "fgvc-aircraft-2013b"
BANNER = 20  # px of copyright banner at the bottom of every image
LEVELS = {"variant": "variants.txt", "family": "families.txt", "manufacturer": "manufacturers.txt"}
LAYOUT = """\
  fgvc-aircraft-2013b/data/
    images/<image_id>.jpg
    variants.txt                       one class name per line (families.txt, manufacturers.txt)
    images_variant_trainval.txt        <image_id> <class name>
    images_variant_test.txt            <image_id> <class name>
    images_box.txt                     optional: <image_id> <xmin> <ymin> <xmax> <ymax>"""
HINT = (
    "Get fgvc-aircraft-2013b.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ "
    "(or pass download=True when online)."
)


class AircraftDataset(AnnotatedImageList):
    """Aircraft images, optionally without the bottom copyright banner.

    ``crop_banner`` applies to samples whose label is at least ``banner_from`` (0: all of them), so a
    combined data set can crop its aircraft images only.
    """

    def __init__(self, *args, crop_banner: bool = False, banner_from: int = 0, **kw):
        super().__init__(*args, **kw)
        self.crop_banner = crop_banner
        self.banner_from = banner_from

    def _crops(self, i: int) -> bool:
        return self.crop_banner and self.samples[i][1] >= self.banner_from

    def __getitem__(self, i: int):
        if not self._crops(i):
            return super().__getitem__(i)
        path, label = self.samples[i]
        img = load_rgb(path)
        img = img.crop((0, 0, img.width, img.height - BANNER))  # drop the bottom BANNER rows
        return (self.transform(img) if self.transform else img), label

    def annotation(self, i: int) -> dict:
        ann = super().annotation(i)
        if ann and self._crops(i):
            w, h = ann["size"]
            ann["size"] = (w, h - BANNER)
            if "object" in ann:
                x0, y0, x1, y1 = ann["object"]
                ann["object"] = (x0, min(y0, h - BANNER), x1, min(y1, h - BANNER))
        return ann


def aircraft_samples(
    root, annotation_level: str = "variant", download: bool = False, name: str = "aircraft"
) -> tuple[list[Sample], list[Sample], list[str]]:
    """The official (trainval, test, classes) of FGVC-Aircraft at ``annotation_level``."""
    if annotation_level not in LEVELS:
        raise ValueError(f"annotation_level must be one of {sorted(LEVELS)}, got {annotation_level!r}")
    if download and resolve_root(root) is not None:
        from torchvision.datasets import FGVCAircraft

        FGVCAircraft(str(resolve_root(root)), download=True)  # fetches + unpacks the archive
    base = locate(name, root, FOLDER, "data", LAYOUT, HINT) / "data"
    lists = {s: f"images_{annotation_level}_{s}.txt" for s in ("trainval", "test")}
    require(name, base, ("images", LEVELS[annotation_level], *lists.values()), LAYOUT, HINT)
    with open(base / LEVELS[annotation_level]) as f:
        classes = [line.strip() for line in f if line.strip()]
    label_of = {c: k for k, c in enumerate(classes)}
    anns: dict[str, dict] = {}
    if (base / "images_box.txt").exists():
        for i, x0, y0, x1, y1 in read_table(base / "images_box.txt", 5):
            anns[i] = {"object": (float(x0) - 1, float(y0) - 1, float(x1), float(y1))}  # 1-based inclusive
    out = {}
    for s, fname in lists.items():
        out[s] = [
            (str(base / "images" / f"{i}.jpg"), label_of[c], dict(anns.get(i, {})))
            for i, c in read_table(base / fname, 2)
        ]
    return out["trainval"], out["test"], classes


@register_dataset("aircraft")
def aircraft(
    root=None,
    split="train",
    transform=None,
    val_fraction=0.1,
    seed=0,
    annotation_level: str = "variant",
    crop_banner: bool = False,
    download: bool = False,
) -> ImageListDataset:
    """FGVC-Aircraft (Maji et al. 2013): 100 variants (or family / manufacturer), 6,667 trainval / 3,333 test."""
    trainval, test, classes = aircraft_samples(root, annotation_level, download)
    return build_annotated(
        "aircraft",
        trainval,
        test,
        classes,
        split,
        transform,
        val_fraction,
        seed,
        cls=AircraftDataset,
        crop_banner=crop_banner,
    )
