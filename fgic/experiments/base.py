"""The one shape every paper's experiment module has, and the helpers they share.

Each ``fgic/experiments/<paper>.py`` exposes the same small surface (``SURFACE``), which the notebooks,
``python -m fgic reproduce`` and the tests use:

- ``NOTEBOOK``: the notebook's file stem (its settings: ``params/<NOTEBOOK>.yaml``);
- ``grid(S) -> {run name: RunSpec}``: every run of the profile's settings ``S``;
- ``paper_numbers() -> DataFrame``: the paper's published numbers, long format with columns
  ``table, dataset, row, metric, value`` (the paper's own labels; ``value`` in percent);
- ``tables(S, records) -> {name: DataFrame}``: the comparison tables (``fgic.evidence.compare``: paper |
  ours mean +- std (n) | paired difference vs the baseline with its CI | verdict | failed seeds);
- ``conclusions(S, records) -> [Conclusion]``: the "What this shows" sentences, computed from the tables.

Every ``grid`` is wrapped in ``with_extra_seeds``: ``S.extra_seeds`` (``{row label: [seeds]}``) adds seeds to
named rows, so a row whose difference is under ``CLOSE`` points gets 5 seeds (``close_rows`` lists the rows
that still need them, and ``cells`` reads every seed a row has).

``records`` is ``{run name: record}`` as ``fgic.runs.train_many`` returns them (``by_name``).

One run-name format for all: ``"<data set>:<row>:s<seed>"`` (``run_name``), where ``row`` is the label
of the compared setting (e.g. ``"ACANet/MC"``, ``"VGG16/MA-Ours"``) and ``<data set>`` is ``benchmark``
for the embedded benchmark (or the data you chose in its place) or the registry name of a real data set.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from fgic import evidence

SURFACE = ("NOTEBOOK", "grid", "paper_numbers", "tables", "conclusions")
BENCHMARK = "benchmark"
PAPER_COLUMNS = ["table", "dataset", "row", "metric", "value"]
_NAME = re.compile(r"^(?P<dataset>[^:]+):(?P<row>.+):s(?P<seed>\d+)$")


def run_name(dataset: str, row: str, seed: int) -> str:
    """``"benchmark:ACANet/MC:s0"``: the key of one run in a grid and the name in its record."""
    if ":" in dataset:
        raise ValueError(f"a data set label may not contain ':' ({dataset!r})")
    return f"{dataset}:{row}:s{int(seed)}"


def parse_run_name(name: str) -> tuple[str, str, int]:
    """``(dataset, row, seed)`` of a ``run_name``; raises ``ValueError`` on another format."""
    m = _NAME.match(name)
    if not m:
        raise ValueError(f"{name!r} is not a run name of the form '<data set>:<row>:s<seed>'")
    return m["dataset"], m["row"], int(m["seed"])


def seeds_by_row(names: Iterable[str]) -> dict[tuple[str, str], list[int]]:
    """``{(dataset, row): [seed, ...]}`` (sorted) of run names: which seeds every compared row has."""
    out: dict[tuple[str, str], list[int]] = {}
    for name in names:
        dataset, row, seed = parse_run_name(name)
        out.setdefault((dataset, row), []).append(seed)
    return {k: sorted(v) for k, v in out.items()}


def by_name(records: Iterable, names: Iterable[str]) -> dict[str, object]:
    """``{name: record}`` from ``train_many``'s records and the grid's names (same order)."""
    return dict(zip(names, records))


def cells(records: Mapping[str, object], dataset: str, rows: Iterable[str],
          seeds: Iterable[int] | None = None) -> dict[str, dict[int, object]]:
    """``{row: {seed: record or None}}`` of ``dataset`` for ``fgic.evidence.compare``.

    ``seeds`` None: every seed found for the row; a seed in ``seeds`` without a record is ``None``
    (reported as "not run", never dropped silently)."""
    found: dict[str, dict[int, object]] = {r: {} for r in rows}
    for name, rec in records.items():
        try:
            d, row, seed = parse_run_name(name)
        except ValueError:
            continue
        if d == dataset and row in found:
            found[row][seed] = rec
    if seeds is not None:  # every seed asked for (None: not run), then any extra seed the row has (S.extra_seeds)
        seeds = list(seeds)
        found = {r: {**{s: c.get(s) for s in seeds}, **{s: v for s, v in sorted(c.items()) if s not in seeds}}
                 for r, c in found.items()}
    return found


# ------------------------------------------------------------------------------------------ extra seeds
CLOSE = 2.0  # points: a compared row whose difference is under this many points needs CLOSE_SEEDS seeds
CLOSE_SEEDS = 5


def extend(grid: Mapping[str, object], extra: Mapping[str, Iterable[int]]) -> dict[str, object]:
    """``grid`` plus, for each row label in ``extra``, a run per extra seed: the row's spec with only the training
    seed changed (``train["seed"]``), named ``run_name(dataset, row, seed)``; seeds the row has are kept."""
    out = dict(grid)
    for name, spec in grid.items():
        dataset, row, _ = parse_run_name(name)
        for s in extra.get(row, ()):
            key = run_name(dataset, row, int(s))
            if key not in out:
                out[key] = dataclasses.replace(spec, train={**spec.train, "seed": int(s)})
    return out


def seeds_text(S, rows: Iterable[str], label: Callable[[str], str] = str) -> str:
    """How many seeds ``rows`` were trained with, for a caption: "3 seeds", or "3-5 seeds (5: CA, MA-Ours)" when
    some rows have ``S.extra_seeds`` (the rows within ``CLOSE`` points of another); ``label`` shortens a row's
    name for the caption (e.g. "VGG16/CA" -> "CA" under a title that names the backbone)."""
    n = {r: len({*S.seeds, *(getattr(S, "extra_seeds", None) or {}).get(r, [])}) for r in rows}
    lo, hi = min(n.values(), default=len(S.seeds)), max(n.values(), default=len(S.seeds))
    if lo == hi:
        return f"{lo} seed{'s' * (lo != 1)}"
    return f"{lo}-{hi} seeds ({hi}: {', '.join(label(r) for r, k in n.items() if k == hi)})"


def with_extra_seeds(grid_fn: Callable) -> Callable:
    """Decorator of a module's ``grid(S)``: ``extend`` it with ``S.extra_seeds``."""

    @functools.wraps(grid_fn)
    def grid(S):
        return extend(grid_fn(S), getattr(S, "extra_seeds", None) or {})

    return grid


def close_rows(tables: Mapping[str, pd.DataFrame], threshold: float = CLOSE, need: int = CLOSE_SEEDS
               ) -> list[tuple[str, str, str]]:
    """``[(table, row, reference row)]`` of the compared rows whose difference is under ``threshold`` points with
    fewer than ``need`` paired seeds: the rows (and their reference) to give more seeds in ``extra_seeds``."""
    out = []
    for name, t in tables.items():
        if "diff" not in t or "n_paired" not in t:
            continue
        for row, r in t.iterrows():
            d, n = r.get("diff"), r.get("n_paired")
            if d is None or n is None or (isinstance(d, float) and math.isnan(d)) or pd.isna(n):
                continue
            if abs(float(d)) < threshold and int(n) < need:
                ref = r.get("vs") if isinstance(r.get("vs"), str) else _baseline(t)
                out.append((name, str(row), str(ref)))
    return out


def _baseline(table: pd.DataFrame) -> str:
    hits = [row for row, v in table["verdict"].items() if v == "baseline"] if "verdict" in table else []
    return str(hits[0]) if hits else ""


def paper_frame(rows: Iterable[tuple[str, str, str, str, float | None]]) -> pd.DataFrame:
    """A ``paper_numbers`` frame from ``(table, dataset, row, metric, value)`` tuples (None values dropped)."""
    data = [r for r in rows if r[4] is not None]
    return pd.DataFrame(data, columns=PAPER_COLUMNS)


def paper_column(numbers: pd.DataFrame, table: str, dataset: str, metric: str = "top1") -> dict[str, float]:
    """``{row: value}`` of one table and data set of a ``paper_numbers`` frame."""
    sel = numbers[(numbers.table == table) & (numbers.dataset == dataset) & (numbers.metric == metric)]
    return dict(zip(sel.row, sel.value.astype(float)))


@dataclass(frozen=True)
class Conclusion:
    """One computed "What this shows" line: ``key`` identifies it across reruns (``fgic reproduce``)."""

    key: str  # e.g. "table4/benchmark/ACANet-ACCB"
    text: str  # the sentence, generated from the numbers
    verdict: str  # fgic.stats.verdict word, "baseline", or why it was not compared
    diff: float | None = None  # the paired difference behind the verdict (its sign), where there is one
    p: float | None = None  # its p-value
    n: int | None = None  # paired seeds

    def __str__(self) -> str:
        return self.text


def table_conclusions(name: str, table: pd.DataFrame, baseline: str, unit: str = "points") -> list[Conclusion]:
    """One ``Conclusion`` per compared row of a ``fgic.evidence.compare`` table (the baseline row skipped)."""
    lines = evidence.conclusions(table, baseline, unit)
    return [Conclusion(f"{name}/{row}", text, str(table.loc[row, "verdict"]),
                       *row_numbers(table, row))
            for row, text in zip(table.index, lines) if row != baseline]


def row_numbers(table: pd.DataFrame | None, row) -> tuple[float | None, float | None, int | None]:
    """``(diff, p, n paired)`` of ``table.loc[row]`` (a ``compare`` table), ``None`` where it was not compared:
    the numbers a ``Conclusion`` carries for ``fgic reproduce``."""
    if table is None or row not in table.index:
        return None, None, None
    r = table.loc[row]
    if math.isnan(r.get("diff", math.nan)) or math.isnan(r.get("p", math.nan)):
        return None, None, None
    n = r.get("n_paired", math.nan)
    return float(r["diff"]), float(r["p"]), int(r["n"] if n is None or math.isnan(n) else n)


def check_surface(module) -> list[str]:
    """Names of ``SURFACE`` that ``module`` lacks (empty when it has the one shape)."""
    return [n for n in SURFACE if not hasattr(module, n)]
