"""Your own data set as a table: ``build_dataset("csv", root=..., file="labels.csv")``.

One image per row, columns ``path,label[,split][,x0,y0,x1,y1]``, comma- or tab-separated (``.tsv``, or
sniffed), with or without a header row (a header must name the columns: ``path``, ``label``, optional
``split``, ``x0``, ``y0``, ``x1``, ``y1``; without one the columns are taken in that order: 2 = path,
label; 3 = + split; 6 = path, label, x0..y1; 7 = all).

- ``path``: relative to ``root`` (default: the CSV's folder) or absolute;
- ``label``: the class name (any string; classes are sorted by name);
- ``split``: ``train`` | ``val`` | ``test``. Without the column, a seeded stratified ``test_fraction`` of each
  class is the test split, and val is carved out of the rest as usual;
- ``x0,y0,x1,y1``: an optional object box in original pixels (an empty cell = no box). Boxed images get
  ``annotation(i) = {"object": (x0, y0, x1, y1), "size": (W, H)}``, so localisation scores work as on CUB.

Errors name the row (1-based line number of the file): a missing file, an empty label, an unknown split,
a malformed box, a val / test class missing from train, an unreadable image, fewer than 2 classes.
"""

from __future__ import annotations

import csv
import os
from functools import lru_cache
from pathlib import Path

from fgic.data.base import resolve_root, root_error, stratified_split
from fgic.data.custom import DatasetContentError, Sample, check_classes, check_images, make_split, summary
from fgic.data.registry import register_dataset

COLUMNS = ("path", "label", "split", "x0", "y0", "x1", "y1")
POSITIONAL = {2: COLUMNS[:2], 3: COLUMNS[:3], 6: COLUMNS[:2] + COLUMNS[3:], 7: COLUMNS}
LAYOUT = """\
  <file>.csv / .tsv   path,label[,split][,x0,y0,x1,y1]   one row per image (header optional)
  images anywhere     paths relative to the root (default: the CSV's folder) or absolute"""


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(column names, [(line number, cells), ...]) of a CSV / TSV file."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".tsv":
        delim = "\t"
    else:
        try:
            delim = csv.Sniffer().sniff(text[:4096], delimiters=",\t;").delimiter
        except csv.Error:
            delim = ","
    rows = [(n, [c.strip() for c in r]) for n, r in enumerate(csv.reader(text.splitlines(), delimiter=delim), 1)]
    rows = [(n, r) for n, r in rows if any(r)]
    if not rows:
        raise DatasetContentError(f"csv: {path} has no rows")
    head = [c.lower() for c in rows[0][1]]
    if "path" in head and "label" in head:
        unknown = set(head) - set(COLUMNS)
        if unknown:
            raise DatasetContentError(f"csv: {path} line 1: unknown columns {sorted(unknown)}; use {list(COLUMNS)}")
        return head, rows[1:]
    cols = POSITIONAL.get(len(rows[0][1]))
    if cols is None:
        raise DatasetContentError(
            f"csv: {path} line {rows[0][0]}: {len(rows[0][1])} columns and no header; expected 2, 3, 6 or 7 "
            f"columns ({', '.join(COLUMNS)}) or a header row naming them"
        )
    return list(cols), rows


def _box(where: str, cells: dict) -> dict:
    vals = [cells.get(k, "") for k in ("x0", "y0", "x1", "y1")]
    if not any(vals):
        return {}
    try:
        x0, y0, x1, y1 = map(float, vals)
    except ValueError:
        raise DatasetContentError(f"csv: {where}: box {vals} is not four numbers x0,y0,x1,y1") from None
    if not (x1 > x0 and y1 > y0):
        raise DatasetContentError(f"csv: {where}: box {vals} is empty (needs x1 > x0 and y1 > y0)")
    return {"object": (x0, y0, x1, y1)}


@lru_cache(maxsize=16)
def csv_samples(file: str, root: str, test_fraction: float, seed: int, verify: bool = True):
    """(train, val, test, classes) of a CSV file, checked; prints the summary once per file."""
    path, base = Path(file), Path(root)
    cols, rows = _read_rows(path)
    parts: dict[str, list[Sample]] = {"train": [], "val": [], "test": [], "": []}
    for n, cells in rows:
        where = f"{path.name} line {n}"
        if len(cells) != len(cols):
            raise DatasetContentError(f"csv: {where}: {len(cells)} cells, expected {len(cols)} ({', '.join(cols)})")
        row = dict(zip(cols, cells))
        if not row["path"]:
            raise DatasetContentError(f"csv: {where}: empty path")
        if not row["label"]:
            raise DatasetContentError(f"csv: {where}: empty label for {row['path']}")
        img = Path(row["path"]).expanduser()
        img = img if img.is_absolute() else base / img
        if not img.is_file():
            raise DatasetContentError(f"csv: {where}: image file {img} not found")
        split = row.get("split", "").lower()
        if split not in parts:
            raise DatasetContentError(f"csv: {where}: split {row['split']!r} is not train, val or test")
        parts[split].append((str(img), row["label"], _box(where, row), where))
    train, val, test = parts["train"], parts["val"], parts["test"]
    if parts[""]:
        if train or val or test:
            raise DatasetContentError(f"csv: {parts[''][0][3]}: empty split while other rows name one")
        keep, held = stratified_split([c for _, c, _, _ in parts[""]], test_fraction, seed + 1)
        train, test = [parts[""][i] for i in keep], [parts[""][i] for i in held]
    classes = check_classes("csv", train, val, test)
    if verify:
        check_images("csv", train + val + test)
    if os.environ.get("FGIC_QUIET_DATA") != "1":
        print(summary(f"csv {path}", classes, train, val, test))
    return train, val, test, classes


@register_dataset("csv")
def csv_dataset(
    root=None,
    split="train",
    transform=None,
    val_fraction=0.1,
    seed=0,
    file: str = "",
    test_fraction: float = 0.2,
    verify: bool = True,
):
    """Your own images listed in a CSV / TSV table (path, label, optional split column).

    ``file``: the CSV / TSV (relative to ``root`` or absolute); ``test_fraction``: without a split column."""
    base = resolve_root(root)
    if not file:
        raise root_error("csv", root, "no file= given", LAYOUT)
    path = Path(file).expanduser()
    path = path if path.is_absolute() or base is None else base / path
    if not path.is_file():
        raise root_error("csv", root, f"the table {path} does not exist", LAYOUT)
    base = base if base is not None else path.parent
    train, val, test, classes = csv_samples(str(path.resolve()), str(base.resolve()), test_fraction, seed, verify)
    return make_split("csv", train, val, test, classes, split, transform, val_fraction, seed)
