"""What data did a run see? A cheap fingerprint of a data set, part of every run's id.

- The embedded benchmark: the generator's ``VERSION`` and every knob (given ones over the profile's over
  the defaults), so a change of the drawing code or of a knob is a different data set.
- Real data: the sorted list of (file path relative to the data root, file size in bytes, label) of the
  trainval and test splits, plus the class names. Reading the list costs one ``stat`` per image (about
  0.1 s for CUB's 11,788 files); contents are not hashed, so an image replaced by another of exactly the
  same size is not noticed (a choice of speed over certainty, stated here).

``fingerprint(dataset, data_kw)`` returns ``{"dataset", "hash", "what", "n"}``; a data set that cannot
be read (missing root) has hash ``"missing"``: the plan (``fgic.plan``) reports it before anything trains.
The split protocol (``val_fraction``, the seed) is already part of the run's spec.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os

_SPLIT_KEYS = ("val_fraction", "seed")  # the split protocol: in the spec, not in the data's identity


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def _synthetic(data_kw: dict) -> dict:
    from fgic.data import synthetic

    kw = {k: v for k, v in data_kw.items() if k not in ("cache", "root", *_SPLIT_KEYS)}
    knobs = synthetic.resolved_knobs(kw.pop("profile", "default"), **kw)
    return {"hash": _digest({"generator": synthetic.VERSION, **knobs}), "n": None,
            "what": f"generator v{synthetic.VERSION}, knobs {json.dumps(knobs, sort_keys=True)}"}


def _files(dataset: str, data_kw: dict) -> dict:
    from fgic.data import build_dataset

    kw = {k: v for k, v in data_kw.items() if k not in _SPLIT_KEYS}
    items, classes = [], None
    for split in ("trainval", "test"):
        ds = build_dataset(dataset, split=split, transform=None, **kw)
        samples = getattr(ds, "samples", None)
        if samples is None:
            raise TypeError(f"{dataset}: no file list (samples) to fingerprint")
        items += [(split, str(path), int(label)) for path, label in samples]
        classes = list(ds.classes)
    root = os.path.commonpath([p for _, p, _ in items]) if items else ""
    rows = sorted((split, os.path.relpath(p, root), os.path.getsize(p), y) for split, p, y in items)
    return {"hash": _digest({"files": rows, "classes": classes}), "n": len(rows),
            "what": f"{len(rows)} files (path, size, label) under {root}"}


@functools.lru_cache(maxsize=256)
def _cached(dataset: str, data_kw_json: str) -> tuple:
    data_kw = json.loads(data_kw_json)
    try:
        out = _synthetic(data_kw) if dataset == "synthetic" else _files(dataset, data_kw)
    except (FileNotFoundError, OSError, ValueError, TypeError, KeyError) as e:
        out = {"hash": "missing", "n": None, "what": f"cannot read: {type(e).__name__}: {e}"}
    return tuple(sorted(out.items()))


def fingerprint(dataset: str, data_kw: dict | None = None) -> dict:
    """``{"dataset", "hash", "n", "what"}`` of the data a spec with ``dataset`` / ``data_kw`` trains on
    (cached per process: call ``clear()`` after changing files on disk)."""
    key = json.dumps(data_kw or {}, sort_keys=True, default=str)
    return {"dataset": dataset, **dict(_cached(dataset, key))}


def clear() -> None:
    """Forget cached fingerprints and the cached file lists of folder / CSV data sets (after files on disk
    changed in this process)."""
    from fgic.data import csv_dataset, folder

    _cached.cache_clear()
    folder.folder_samples.cache_clear()
    csv_dataset.csv_samples.cache_clear()
