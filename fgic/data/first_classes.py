"""``build_dataset("first_classes", of="cub", num_classes=20, root=...)``: the first K classes of any file-list
data set, for CPU-sized studies on real data (notebook 07 trains on the first 20 classes of a CUB subset).

The classes are the data set's own first ``num_classes`` in its own order (CUB: ``classes.txt``, ids 1..K), so
the subset is the same on every machine and needs no file of its own. Labels stay 0..K-1. Every split of the
wrapped data set (``of``, built with the same ``root``, ``split``, ``transform``, ``val_fraction``, ``seed`` and
any other options) is filtered to those classes, so the validation split is the wrapped one's (seeded,
stratified per class) restricted to them; boxes and parts stay attached to their images. The run id's data
fingerprint (``fgic.data.fingerprint``) lists exactly the files kept. Works for every data set with a
``samples`` list of ``(path, label)`` (every real loader and ``folder`` / ``csv``); ``synthetic`` has its own
``num_classes`` knob.
"""

from __future__ import annotations

import copy

from fgic.data.registry import build_dataset, register_dataset


@register_dataset("first_classes")
def first_classes(root=None, split="train", transform=None, val_fraction=0.1, seed=0, of: str = "cub",
                  num_classes: int = 20, **kw):
    """The first ``num_classes`` classes of data set ``of`` (its own order; labels kept): a class subset."""
    if of == "first_classes":
        raise ValueError("first_classes: 'of' must name another data set")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"first_classes: num_classes={num_classes!r} must be an int >= 2")
    full = build_dataset(of, root=root, split=split, transform=transform, val_fraction=val_fraction, seed=seed,
                         **kw)
    samples = getattr(full, "samples", None)
    if samples is None:
        raise TypeError(f"first_classes: data set {of!r} has no file list (samples) to filter")
    if num_classes > len(full.classes):
        raise ValueError(f"first_classes: {num_classes} classes asked for, {of!r} has {len(full.classes)}")
    keep = [i for i, (_, y) in enumerate(samples) if int(y) < num_classes]
    out = copy.copy(full)  # same class (annotations, image reading), own lists
    out.samples = [samples[i] for i in keep]
    out.classes = list(full.classes[:num_classes])
    boxes = getattr(full, "boxes", None)
    if isinstance(boxes, dict):
        out.boxes = {j: boxes[i] for j, i in enumerate(keep) if i in boxes}
    out.name = f"{getattr(full, 'name', of) or of}[:{num_classes}]"
    return out
