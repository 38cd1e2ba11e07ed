"""``python -m fgic reproduce``: rerun a notebook's grid into a fresh runs folder and check its conclusions.

For each notebook: build its grid from the profile's settings (``fgic.experiments.<paper>.grid``), read
the committed records (``runs/<profile>/``, the published results), train the same grid into a fresh
folder (default ``runs-reproduce/<time stamp>/``, or ``--runs DIR``), compute both sets of
``conclusions`` and print one line per conclusion: the committed verdict, the rerun's verdict, and
whether they agree. The exit status is the number of conclusions whose verdict changed (0 = all agree).

What should agree on another machine: the verdicts (significant or not, and the sign), not the digits.
CPU results depend on the intra-op thread count (``threads`` in the training config, part of every run
id) and the CPU model, so a rerun's accuracies differ by about the seed spread.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from pathlib import Path

from fgic import paths

EXPERIMENTS = {
    "00_benchmark_tour": "fgic.experiments.benchmark_tour",
    "01_acanet": "fgic.experiments.acanet",
    "02_multi_attention": "fgic.experiments.multi_attention",
    "03_mixed_attention": "fgic.experiments.mixed_attention",
    "04_gholm_net": "fgic.experiments.gholm",
    "05_convnextv2_scra": "fgic.experiments.scra",
    "07_cub100_cpu_study": "fgic.experiments.cub100_study",
}


def experiment(notebook: str):
    """The experiment module of ``notebook`` (a stem or a unique prefix such as ``"01"``)."""
    hits = [n for n in EXPERIMENTS if n == notebook or n.startswith(notebook)]
    if len(hits) != 1:
        raise KeyError(f"notebook {notebook!r} matches {hits or 'nothing'}; notebooks: {list(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[hits[0]])


def stored_records(grid: dict, group: str) -> dict:
    """``{name: record}`` of the grid's runs that have a finished ``record.json`` in ``runs/<group>/``
    (no checkpoint needed: the published results are records only)."""
    from fgic.runs import read_finished

    found = {name: read_finished(paths.runs_dir() / group / spec.run_id) for name, spec in grid.items()}
    return {name: rec for name, rec in found.items() if rec is not None}


@contextlib.contextmanager
def runs_folder(folder: Path):
    old = os.environ.get("FGIC_RUNS")
    os.environ["FGIC_RUNS"] = str(folder)
    try:
        yield folder
    finally:
        if old is None:
            os.environ.pop("FGIC_RUNS", None)
        else:
            os.environ["FGIC_RUNS"] = old


def compare_conclusions(before: list, after: list) -> list[dict]:
    """Rows ``{key, committed, rerun, agree, committed_text, rerun_text}`` matching conclusions by key (a key on one
    side only: not agreeing); the texts are the two sentences, with their differences, intervals and p-values."""
    a, b = {c.key: c for c in before}, {c.key: c for c in after}
    rows = []
    for key in [*a, *(k for k in b if k not in a)]:
        va, vb = (a[key].verdict if key in a else "absent"), (b[key].verdict if key in b else "absent")
        rows.append({"key": key, "committed": va, "rerun": vb, "agree": va == vb,
                     "committed_text": a[key].text if key in a else "", "rerun_text": b[key].text if key in b else ""})
    return rows


def reproduce(notebook: str, profile: str = "default", folder: str | os.PathLike | None = None,
              overrides=None, workers: int | None = None) -> list[dict]:
    """Rerun ``notebook``'s grid into ``folder`` and compare conclusions with the committed records.

    The committed side is the profile's grid without ``overrides``; the rerun applies them, so ``threads=2`` trains
    the same grid at another thread count (other run ids) and compares it with the committed 1-thread records."""
    from fgic.profiles import settings
    from fgic.runs import train_many

    exp = experiment(notebook)
    S0 = settings(exp.NOTEBOOK, profile, overrides=[])  # the profile as committed (no overrides, no $FGIC_SET)
    S = settings(exp.NOTEBOOK, profile, overrides=overrides)  # the rerun's (e.g. threads=2: other run ids)
    grid0, grid = exp.grid(S0), exp.grid(S)
    committed = stored_records(grid0, profile)
    if len(committed) < len(grid0):
        print(f"{exp.NOTEBOOK}: {len(grid0) - len(committed)} of {len(grid0)} runs have no committed record")
    folder = Path(folder or paths.project_root() / "runs-reproduce" / time.strftime("%Y%m%d-%H%M%S"))
    with runs_folder(folder):
        records = train_many(list(grid.values()), group=profile, names=list(grid), workers=workers)
    fresh = dict(zip(grid, records))
    rows = compare_conclusions(exp.conclusions(S0, committed), exp.conclusions(S, fresh))
    width = max([len(r["key"]) for r in rows] + [10])
    print(f"\n{exp.NOTEBOOK}: conclusions, committed vs rerun ({folder})")
    for r in rows:
        mark = "same" if r["agree"] else "DIFFERS"
        print(f"  {r['key']:<{width}}  {r['committed']:<28} {r['rerun']:<28} {mark}")
        if not r["agree"]:  # the numbers behind both verdicts: how far each p is from the line
            print(f"      committed: {r['committed_text']}\n      rerun:     {r['rerun_text']}")
    print(f"  {sum(r['agree'] for r in rows)} of {len(rows)} verdicts agree")
    return rows
