"""``python -m fgic reproduce``: rerun a notebook's grid into a fresh runs folder and check its conclusions.

For each notebook: build its grid from the profile's settings (``fgic.experiments.<paper>.grid``), read
the committed records (``runs/<profile>/``, the published results), train the same grid into a fresh
folder (default ``runs-reproduce/<time stamp>/``, or ``--runs DIR``), compute both sets of
``conclusions`` and print one line per conclusion: the committed verdict, the rerun's verdict, and
whether they agree (``change_kind``). The exit status is the number of conclusions that contradict or differ
otherwise; a change in significance only (same sign, one side p >= 0.05) is printed and counted, not failed.

What should agree on another machine: the sign of every significant effect, and no significant effect in the
opposite direction; not the digits, and not which side of p = 0.05 a borderline comparison lands on. A comparison
at p = 0.05 is significant again on a rerun about half of the time, so ``summary`` prints how many significance
changes new seeds alone would give (``fgic.stats.expected_changes``) beside the number observed.
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
    "06_cross_paper_study": "fgic.experiments.cross_study",
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


SIGNIFICANT = {"B better": +1, "B worse": -1}  # a significant verdict and its direction (B minus A)
PAPER_WORDS = ("reproduced", "contradicted")  # significant, direction relative to the paper's
NOT_SIGNIFICANT = "no significant difference"


def change_kind(before, after) -> str:
    """How a conclusion's verdict moved between the committed records and the rerun (two ``Conclusion``, or None):

    - ``"same"``: the same verdict;
    - ``"significance"``: one side significant, the other "no significant difference", and both differences have
      the same sign (where they are known): the rerun neither confirms nor refutes at p < 0.05; a p near 0.05
      lands on either side about half of the time (``fgic.stats.rerun_significant``);
    - ``"contradicts"``: significant in opposite directions, or a significant effect whose rerun difference has the
      opposite sign;
    - ``"differs"``: any other change (a conclusion on one side only, testable on one side only, ...).
    """
    if before is None or after is None:
        return "differs"
    va, vb = before.verdict, after.verdict
    if va == vb:
        return "same"
    words = {*SIGNIFICANT, *PAPER_WORDS, NOT_SIGNIFICANT}
    if va not in words or vb not in words:
        return "differs"
    sig = [v != NOT_SIGNIFICANT for v in (va, vb)]
    if all(sig):
        return "contradicts"  # B better <-> B worse, reproduced <-> contradicted
    da, db = before.diff, after.diff
    if da is not None and db is not None and da * db < 0:
        return "contradicts"
    return "significance"


def compare_conclusions(before: list, after: list) -> list[dict]:
    """Rows ``{key, committed, rerun, agree, kind, committed_text, rerun_text, p, n}`` matching conclusions by key
    (a key on one side only: not agreeing); ``kind`` is ``change_kind``; the texts are the two sentences, with their
    differences, intervals and p-values; ``p``, ``n``: the committed comparison's (None without one)."""
    a, b = {c.key: c for c in before}, {c.key: c for c in after}
    rows = []
    for key in [*a, *(k for k in b if k not in a)]:
        ca, cb = a.get(key), b.get(key)
        va, vb = (ca.verdict if ca else "absent"), (cb.verdict if cb else "absent")
        rows.append({"key": key, "committed": va, "rerun": vb, "agree": va == vb, "kind": change_kind(ca, cb),
                     "committed_text": ca.text if ca else "", "rerun_text": cb.text if cb else "",
                     "p": getattr(ca, "p", None), "n": getattr(ca, "n", None)})
    return rows


def summary(rows: list[dict]) -> str:
    """The closing lines of a comparison: how many verdicts agree, how many changed only in significance, how many
    contradict, and how many significance changes a mere re-seed would give (``fgic.stats.expected_changes``)."""
    from fgic.stats import expected_changes

    count = {k: sum(r["kind"] == k for r in rows) for k in ("same", "significance", "contradicts", "differs")}
    tested = [(r["p"], r["n"]) for r in rows if r["p"] is not None and r["n"]]
    expect = expected_changes([p for p, _ in tested], [n for _, n in tested])
    return (f"  {count['same']} of {len(rows)} verdicts agree; {count['significance']} changed in significance only "
            f"(same sign); {count['contradicts']} contradict; {count['differs']} differ otherwise\n"
            f"  a rerun with new seeds would change about {expect:.1f} of the {len(tested)} tested verdicts in "
            f"significance by chance (each committed p read as its rerun's power)")


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
    marks = {"same": "same", "significance": "significance only", "contradicts": "CONTRADICTS", "differs": "DIFFERS"}
    for r in rows:
        print(f"  {r['key']:<{width}}  {r['committed']:<28} {r['rerun']:<28} {marks[r['kind']]}")
        if not r["agree"]:  # the numbers behind both verdicts: how far each p is from the line
            print(f"      committed: {r['committed_text']}\n      rerun:     {r['rerun_text']}")
    print(summary(rows))
    return rows
