"""A procedurally generated fine-grained benchmark: stylised birds that differ only in small parts.

No download needed: ``build_dataset("synthetic", split=..., profile="default")``. Every class shares one
template (body, belly, head, beak, wing, tail, eye, crown) and is a combination of part attributes
(``ATTRIBUTES``: beak shape, wing marks, crown cap / crest, eye ring, tail shape). Pose (rotation, flip,
scale, position), the colours of body / head / wing / beak / background, clutter shapes (drawn from a
palette that includes the colours of the discriminative marks) and pixel noise are sampled independently
of the class, so only part shapes and marks carry the label, as in the seed papers' fine-grained data.
Position is uniform over where the pose's envelope (the box of every part variant, ``placement`` in the
annotations) fits the image, so its range is the same for every class; a classifier on the placement box
alone stays at chance (tests/test_synthetic.py). The tight ``object`` box still differs a little between
classes, because a long beak or a pointed tail is longer: that is part shape, the label itself.

Choices made here (nothing to follow in a paper):
- Classes come in "twins": a base combination chosen greedily far (Hamming) from those already taken, and
  a twin differing from it in exactly one part (the part cycles beak, wing, crown, eye, tail). So every
  class has a nearest class one part away, and ``hardest_pairs`` lists such pairs. The class list depends
  only on ``num_classes``, never on ``seed``; ``seed`` changes the images and the validation split.
- Train/val are carved (``stratified_split``) from one seeded stream, test is an independent stream.
- Images are cached as uint8 tensors in ``$FGIC_CACHE/synthetic/<hash of all knobs>.pt`` (default
  ``~/.cache/fgic/synthetic``), written to a temp file then ``os.replace``d.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import Dataset

from fgic import paths
from fgic.data.base import SPLITS, stratified_split
from fgic.data.registry import register_dataset
from fgic.data.synthetic_render import (
    ATTRIBUTE_PARTS,
    ATTRIBUTES,
    PART_NAMES,
    envelope_boxes,
    part_boxes,
    render,
    sample_scenes,
)

VERSION = 2  # bump when the drawing changes, so stale caches are not reused (2: class-independent placement)
PROFILES = {
    "smoke": dict(num_classes=4, images_per_class=16, test_per_class=8, image_size=32, object_scale=0.95,
                  clutter=0.5),
    "default": dict(num_classes=10, images_per_class=400, test_per_class=60, image_size=64, object_scale=0.95,
                    clutter=0.6),
}
KNOBS = ("num_classes", "images_per_class", "test_per_class", "image_size", "object_scale", "clutter",
         "max_rotation", "scale_range")
# "object": the drawn bird; "placement": the pose's envelope (every part variant), which depends on the
# pose only: position and size carry no class information (tests/test_synthetic.py checks it)
BOX_KEYS = ("object", *PART_NAMES, "placement")


def class_table(num_classes: int) -> np.ndarray:
    """(K, 5) attribute indices of the K classes: twins one part apart, bases far from each other."""
    sizes = [len(v) for v in ATTRIBUTES.values()]
    combos = np.array(list(itertools.product(*map(range, sizes))))  # (162, 5)
    if not 2 <= num_classes <= len(combos):
        raise ValueError(f"num_classes must be in [2, {len(combos)}], got {num_classes}")
    combos = combos[np.random.default_rng(2024).permutation(len(combos))]  # fixed order, not the data seed
    taken: list[tuple] = []
    while len(taken) < num_classes:
        if taken:
            dist = (combos[:, None] != np.array(taken)[None]).sum(-1).min(1)  # (162,) to the nearest taken
            base = tuple(combos[int(np.argmax(dist))])
        else:
            base = tuple(combos[0])
        taken.append(base)
        for p in (np.arange(len(sizes)) + len(taken) // 2) % len(sizes):  # the part the twin changes
            twin = list(base)
            twin[p] = (twin[p] + 1) % sizes[p]
            if len(taken) < num_classes and tuple(twin) not in taken:
                taken.append(tuple(twin))
                break
    return np.array(taken)


def class_name(i: int, attrs) -> str:
    marks = [f"{ATTRIBUTES[p][a]}-{p}" for p, a in zip(ATTRIBUTE_PARTS, attrs) if a > 0]
    return f"c{i:02d}_" + ("_".join(marks) or "plain")


def _discriminative(table: np.ndarray) -> list[list[str]]:
    """Per class, the parts that differ from its nearest classes (minimum Hamming distance)."""
    diff = table[:, None] != table[None]  # (K, K, 5)
    dist = diff.sum(-1) + np.eye(len(table), dtype=int) * 99
    out = []
    for c in range(len(table)):
        near = dist[c] == dist[c].min()
        out.append([p for j, p in enumerate(ATTRIBUTE_PARTS) if diff[c, near, j].any()])
    return out


def generate(stream: int, labels: np.ndarray, table: np.ndarray, seed: int, image_size: int,
             object_scale: float, clutter: float, max_rotation: float, scale_range=(0.85, 1.1)) -> dict:
    """Draw one seeded stream: uint8 images (N, 3, H, W), labels (N,), boxes (N, 9, 4) in ``BOX_KEYS`` order."""
    rng = np.random.default_rng([seed, stream])
    scene = sample_scenes(rng, table[labels], image_size, object_scale, clutter, max_rotation, tuple(scale_range))
    boxes = {**part_boxes(scene), "placement": envelope_boxes(scene)}
    return dict(images=torch.from_numpy(render(scene)), labels=torch.from_numpy(labels.astype(np.int64)),
                boxes=torch.from_numpy(np.stack([boxes[k] for k in BOX_KEYS], 1).astype(np.float32)))


def _load_or_generate(stream: str, knobs: dict, seed: int, cache: bool) -> dict:
    key = json.dumps(dict(knobs, seed=seed, stream=stream, version=VERSION), sort_keys=True)
    path = paths.cache_dir() / "synthetic" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"
    if cache and path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a corrupt file (e.g. from another tool): regenerate it
            pass
    per_class = knobs["images_per_class" if stream == "trainval" else "test_per_class"]
    labels = np.tile(np.arange(knobs["num_classes"]), per_class)
    data = generate(SPLITS.index(stream), labels, class_table(knobs["num_classes"]), seed, knobs["image_size"],
                    knobs["object_scale"], knobs["clutter"], knobs["max_rotation"], knobs["scale_range"])
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(data, f)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)  # atomic: readers never see a half-written file
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return data


class SyntheticBirds(Dataset):
    """Items ``(transform(img), label)``; ``img`` is a uint8 (3, H, W) tensor, or float in [0, 1] without transform."""

    part_names = PART_NAMES
    attribute_parts = ATTRIBUTE_PARTS

    def __init__(self, data: dict, table: np.ndarray, transform=None, split: str = "train", knobs: dict | None = None):
        self.images, self.labels, self.boxes = data["images"], data["labels"], data["boxes"]
        self.table = table
        self.classes = [class_name(i, a) for i, a in enumerate(table)]
        self.class_attributes = [
            dict(index=i, name=n, **{p: ATTRIBUTES[p][a] for p, a in zip(ATTRIBUTE_PARTS, row)})
            for i, (n, row) in enumerate(zip(self.classes, table))
        ]
        self.discriminative = _discriminative(table)
        self.transform, self.split, self.knobs, self.name = transform, split, knobs or {}, "synthetic"

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = self.images[i]  # (3, H, W) uint8
        return (self.transform(img) if self.transform else img.float() / 255), int(self.labels[i])

    def annotation(self, i: int) -> dict:
        b = self.boxes[i].tolist()
        H, W = self.images.shape[-2:]
        return {"object": tuple(b[0]), "parts": {p: tuple(x) for p, x in zip(PART_NAMES, b[1:len(BOX_KEYS) - 1])},
                "placement": tuple(b[-1]),
                "discriminative": list(self.discriminative[int(self.labels[i])]), "size": (W, H)}

    def hardest_pairs(self, k: int | None = None) -> list[tuple[int, int, str]]:
        """Class pairs ``(i, j, part)`` that differ in exactly one part, at most ``k`` of them."""
        diff = self.table[:, None] != self.table[None]
        ii, jj = np.nonzero(diff.sum(-1) == 1)
        pairs = [(int(i), int(j), ATTRIBUTE_PARTS[int(np.argmax(diff[i, j]))]) for i, j in zip(ii, jj) if i < j]
        return pairs[:k] if k is not None else pairs

    def __repr__(self) -> str:
        return f"SyntheticBirds(split={self.split!r}, n={len(self)}, classes={self.num_classes}, knobs={self.knobs})"


def resolved_knobs(profile: str = "default", **knobs) -> dict:
    """Every knob of the benchmark: the given ones over ``profile``'s over the generator's defaults."""
    unknown = set(knobs) - set(KNOBS)
    if unknown:
        raise TypeError(f"unknown synthetic knobs {sorted(unknown)}; known: {KNOBS}")
    return {"max_rotation": 30.0, "scale_range": [0.85, 1.1], **PROFILES[profile], **knobs}


@register_dataset("synthetic")
def synthetic(root=None, split: str = "train", transform=None, val_fraction: float = 0.1, seed: int = 0,
              profile: str = "default", cache: bool = True, **knobs) -> SyntheticBirds:
    """The embedded benchmark: procedurally drawn birds that differ in small parts, with part boxes.

    ``profile`` ("smoke" | "default") fills the knobs that are not given.

    Knobs: num_classes, images_per_class (train + val), test_per_class, image_size (32-448 px),
    object_scale (bird length / image side), scale_range ([lo, hi]: each image's size is object_scale x
    U(lo, hi), default [0.85, 1.1]), clutter (0 = plain background, 1 = default), max_rotation (deg).
    ``root`` is ignored (nothing to download).
    """
    unknown = set(knobs) - set(KNOBS)
    if unknown:
        raise TypeError(f"unknown synthetic knobs {sorted(unknown)}; known: {KNOBS}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    knobs = resolved_knobs(profile, **knobs)
    lo, hi = knobs["scale_range"]
    if not 0 < lo <= hi:
        raise ValueError(f"scale_range must be [lo, hi] with 0 < lo <= hi, got {knobs['scale_range']}")
    if not 32 <= knobs["image_size"] <= 448:
        raise ValueError(f"image_size must be in [32, 448], got {knobs['image_size']}")
    table = class_table(knobs["num_classes"])
    data = _load_or_generate("test" if split == "test" else "trainval", knobs, seed, cache)
    if split in ("train", "val"):
        tr, va = stratified_split(data["labels"].tolist(), val_fraction, seed)
        idx = torch.tensor(tr if split == "train" else va, dtype=torch.long)
        data = {k: v[idx] for k, v in data.items()}
    return SyntheticBirds(data, table, transform, split, knobs)


def render_bird(attrs, size: int = 128, seed: int = 0, clutter: float = 0.0, **scene) -> tuple[np.ndarray, dict]:
    """Draw one bird with explicit attributes and, optionally, explicit pose / colours.

    ``attrs``: 5 indices or a dict part -> value name. ``scene`` overrides any entry of
    ``sample_scenes`` for this image (e.g. ``angle=0.0, flip=1.0, cx=64, cy=64, scale=50, body=(1, 0, 0)``).
    Returns the uint8 (3, S, S) image and its boxes ``{name: (x0, y0, x1, y1)}``.
    """
    if isinstance(attrs, dict):
        attrs = [ATTRIBUTES[p].index(attrs.get(p, ATTRIBUTES[p][0])) for p in ATTRIBUTE_PARTS]
    s = sample_scenes(np.random.default_rng(seed), np.array([attrs]), size, clutter=clutter)
    for k, v in scene.items():
        s[k] = np.asarray(v, s[k].dtype).reshape(s[k].shape)
    boxes = part_boxes(s)
    return render(s)[0], {k: tuple(b[0].tolist()) for k, b in boxes.items()}


def benchmark(image_size: int = 64, n: int = 1024, seed: int = 0) -> float:
    """Print and return generation speed (images/s, CPU time of this process, no cache)."""
    table = class_table(PROFILES["default"]["num_classes"])
    labels = np.arange(n) % len(table)
    t0, w0 = time.process_time(), time.perf_counter()
    generate(3, labels, table, seed, image_size, 0.9, 1.0, 30.0)
    rate, wall = n / (time.process_time() - t0), n / (time.perf_counter() - w0)
    print(f"synthetic: {rate:.0f} images/s at {image_size} px (CPU time; {wall:.0f}/s wall, "
          f"{torch.get_num_threads()} torch threads)")
    return rate
