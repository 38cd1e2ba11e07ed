"""Evaluation subsets and the training protocol of a run, said in words.

``balanced_indices(dataset, per_class, seed)``: the indices of a class-balanced, seeded subset (the same
number of images from every class), for every table or figure that evaluates on part of a split;
``balanced_sample(dataset, total, seed)`` picks the per-class count (or, below one per class, the classes). An
evenly spaced pick (``np.linspace`` over the indices) is not balanced: test splits are often ordered or
interleaved by class, and a stride that shares a factor with the class count keeps only some classes.

Training protocol: ``data_kw={"val_fraction": 0}`` makes ``build_dataset(..., split="train")`` the whole
official training split and ``split="val"`` empty; ``fgic.engine.fit`` skips an empty validation set (no
``val_acc`` in the history, no ``val_top1`` in the metrics) and the run record's ``sizes["val"]`` is 0.
The paper profiles use it (the seed papers train on the full training split and report the last epoch);
the CPU profiles keep the seeded, stratified 10 % validation split as our addition. ``protocol(record)``
states which images a record's numbers were trained and measured on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

FULL_TRAIN = {"val_fraction": 0.0}  # data_kw of the papers' protocol: the whole official training split


def targets_of(dataset) -> np.ndarray:
    """Class labels (N,) of a data set: its ``targets`` / ``labels`` attribute, else one read per item."""
    for attr in ("targets", "labels"):
        t = getattr(dataset, attr, None)
        if t is not None:
            return np.asarray(t.tolist() if hasattr(t, "tolist") else t, dtype=np.int64).reshape(-1)
    return np.asarray([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)


def balanced_indices(
    dataset_or_targets, per_class: int | None, seed: int = 0, classes: Sequence[int] | None = None
) -> list[int]:
    """Seeded class-balanced subset: ``per_class`` random indices of every class (of ``classes``, default all).

    ``per_class=None`` takes as many as the smallest class has; a class with fewer images than asked for
    raises (the subset would not be balanced). Returned sorted by class, then index, so a figure's columns
    run through the classes in order.
    """
    t = (
        np.asarray(dataset_or_targets)
        if isinstance(dataset_or_targets, (list, tuple, np.ndarray))
        else targets_of(dataset_or_targets)
    )
    classes = np.unique(t) if classes is None else np.asarray(classes)
    counts = {int(c): int((t == c).sum()) for c in classes}
    n = min(counts.values()) if per_class is None else int(per_class)
    short = {c: k for c, k in counts.items() if k < n}
    if short:
        raise ValueError(f"balanced_indices: {n} per class asked for, but classes {short} have fewer images")
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for c in classes:
        idx = np.flatnonzero(t == c)
        out.extend(sorted(rng.choice(idx, size=n, replace=False).tolist()))
    return out


def balanced_sample(dataset_or_targets, total: int | None, seed: int = 0) -> list[int]:
    """A seeded, class-balanced subset of about ``total`` images, for a table or a figure.

    ``total >= K`` classes (or None): ``total // K`` images of every class (None: as many as the smallest
    class has). ``total < K``: one image each of ``total`` classes drawn with ``seed``. Either way every
    class present has the same count.
    """
    t = (
        np.asarray(dataset_or_targets)
        if isinstance(dataset_or_targets, (list, tuple, np.ndarray))
        else targets_of(dataset_or_targets)
    )
    classes = np.unique(t)
    if total is None or total >= len(classes):
        smallest = min(int((t == c).sum()) for c in classes)
        per = smallest if total is None else min(smallest, int(total) // len(classes))
        return balanced_indices(t, per, seed)
    picked = np.sort(np.random.default_rng(seed).choice(classes, size=int(total), replace=False))
    return balanced_indices(t, 1, seed, classes=picked)


def protocol(record: Mapping) -> str:
    """Which images a run record's numbers come from, in one sentence (its ``sizes`` and ``data_kw``)."""
    sizes = record.get("sizes") or {}
    params = record.get("params") or {}
    kw = params.get("data_kw") or {}
    vf = kw.get("val_fraction", 0.1)
    name = params.get("dataset", "?")
    if sizes.get("val", 0) == 0:
        train = f"the whole training split ({sizes.get('train', '?')} images, no validation split)"
    else:
        train = (
            f"{sizes.get('train', '?')} images of the training split (the other {sizes['val']}, "
            f"{vf:.0%} of each class, are held out as validation: reported as val top-1, not used for selection)"
        )
    return (
        f"{name}: trained on {train}; test top-1 measured on the {sizes.get('test', '?')}-image test split "
        f"after the last epoch"
    )
