"""CUB-200-2011 + FGVC-Aircraft as one 300-class problem (task 2 of the SCRA paper).

CUB labels come first (0..199), aircraft variants follow (200..299); each part keeps its official
split, so the training set is CUB train + aircraft trainval (5,994 + 6,667 = 12,661 images) and the
test set CUB test + aircraft test (5,794 + 3,333 = 9,127), the counts the SCRA paper reports.
``root`` holds both data sets' folders (``CUB_200_2011/`` and ``fgvc-aircraft-2013b/``). The
aircraft offset is the number of CUB classes found, so a CUB subset still gives contiguous labels.
Annotations (boxes) of both parts are kept; the aircraft banner can be cropped as in ``aircraft``.
"""

from __future__ import annotations

from fgic.data.aircraft import AircraftDataset, aircraft_samples
from fgic.data.base import ImageListDataset
from fgic.data.cub import build_annotated, cub_samples
from fgic.data.registry import register_dataset


@register_dataset("cub_aircraft")
def cub_aircraft(
    root=None,
    split="train",
    transform=None,
    val_fraction=0.1,
    seed=0,
    crop_banner: bool = False,
    download: bool = False,
) -> ImageListDataset:
    """CUB-200-2011 + FGVC-Aircraft as one 300-class problem (SCRA paper, task 2)."""
    name = "cub_aircraft"
    cub_train, cub_test, cub_classes = cub_samples(root, name=name)
    air_train, air_test, air_classes = aircraft_samples(root, "variant", download, name=name)
    k = len(cub_classes)
    shift = lambda samples: [(p, y + k, ann) for p, y, ann in samples]
    trainval, test = cub_train + shift(air_train), cub_test + shift(air_test)
    classes = cub_classes + air_classes
    extra = {"cls": AircraftDataset, "crop_banner": crop_banner, "banner_from": k}  # crop aircraft images only
    return build_annotated(name, trainval, test, classes, split, transform, val_fraction, seed, **extra)
