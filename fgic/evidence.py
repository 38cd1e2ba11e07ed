"""From run records to evidence: one table shape and computed conclusion sentences for every notebook.

A *row* of a comparison is one setting (a model, a loss, an ablation switch) trained with several seeds;
its *cell* is ``{seed: record or None}``. ``compare`` turns ``{row: cell}`` into the table every notebook
shows::

    row | paper | ours (mean +- std, n) | diff vs baseline [95 % CI] | p | verdict | failed

- ``ours`` summarises the seeds whose run is healthy (``fgic.health.run_health``); a failed or collapsed
  seed is counted in ``failed`` with its reason and never averaged in.
- ``diff`` is the paired difference to the baseline row over the seeds both rows have (``fgic.stats.
  paired_seeds``: the paired t-test over seeds; why that test: see ``fgic.stats``); with fewer than two
  shared seeds it is left empty ("n < 2").
- ``verdict`` is ``fgic.stats.verdict`` of that comparison against the paper's own difference
  (paper row minus paper baseline) when the paper gives both numbers.

``conclusions(table)`` writes one sentence per compared row from those numbers (a p between 0.005 and 0.2 also
gets the chance that new seeds reach p < 0.05, ``fgic.stats.rerun_significant``: such a verdict may turn over on
another machine), so a notebook's "What this shows" never states an effect the records do not show. ``claims``
adds one line per paper claim: reproduced / contradicted / no significant difference / not testable here (why).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from fgic import stats
from fgic.health import run_health

COLUMNS = ["paper", "ours", "n", "mean", "std", "diff", "ci_low", "ci_high", "p", "verdict", "failed", "paper_diff"]
ALL_COLUMNS = ["diff_all", "ci_low_all", "ci_high_all", "p_all", "n_all"]  # the same, counting finished failed seeds


def _value(record, metric: str) -> float | None:
    v = (record.get("metrics") or {}).get(metric)
    return None if v is None else float(v)


def healthy(cell: Mapping[int, object], metric: str = "test_top1") -> tuple[dict[int, float], dict[int, str]]:
    """``({seed: value}, {seed: reason})``: the healthy seeds' metric values and the failed seeds' reasons."""
    ok, failed = {}, {}
    for seed, rec in sorted(cell.items()):
        good, reason = run_health(rec)
        value = _value(rec, metric) if good else None
        if good and value is None:
            good, reason = False, f"no {metric}"
        if good:
            ok[seed] = value
        else:
            failed[seed] = reason
    return ok, failed


def measured(cell: Mapping[int, object], failed: Mapping[int, str], metric: str = "test_top1") -> dict[int, float]:
    """``{seed: value}`` of the failed seeds that still finished with a finite ``metric`` (a run that did not
    learn, not one that diverged or never finished): what ``compare``'s "counting the failed seeds" line uses."""
    out = {}
    for seed in failed:
        rec = cell.get(seed)
        v = _value(rec, metric) if rec is not None and rec.get("status") == "finished" else None
        if v is not None and math.isfinite(v):
            out[seed] = v
    return out


def compare(cells: Mapping[str, Mapping[int, object]], baseline: str | None = None,
            paper: Mapping[str, float | None] | None = None, metric: str = "test_top1",
            scale: float = 100.0) -> pd.DataFrame:
    """The comparison table of ``cells`` (``{row: {seed: record or None}}``), one row per setting.

    ``baseline``: the row every other row is compared with (paired over shared seeds); ``paper``:
    ``{row: the paper's number}`` in the table's unit (``scale`` = 100: percentage points). Numeric
    columns are in that unit; ``ours`` is the formatted ``"82.7 +- 1.2 (n=3)"``. Where a row or the baseline
    has failed seeds that finished with a value (``measured``), ``diff_all`` .. ``n_all`` hold the same paired
    comparison counting them too: a sensitivity check, never the verdict.
    """
    paper = dict(paper or {})
    if baseline is not None and baseline not in cells:
        raise KeyError(f"baseline {baseline!r} is not a row of this table ({list(cells)})")
    values = {row: healthy(cell, metric) for row, cell in cells.items()}
    base_ok = values[baseline][0] if baseline is not None else {}
    base_all = {**base_ok, **measured(cells[baseline], values[baseline][1], metric)} if baseline is not None else {}
    p_base = paper.get(baseline) if baseline is not None else None
    out = []
    for row, (ok, failed) in values.items():
        s = stats.summarize(list(ok.values()))
        r = {"row": row, "paper": _num(paper.get(row)), "ours": s.format(scale), "n": s.n,
             "mean": s.mean * scale, "std": s.std * scale, "diff": math.nan, "ci_low": math.nan,
             "ci_high": math.nan, "p": math.nan, "verdict": "", "failed": _failed_text(failed, len(cells[row])),
             "paper_diff": math.nan if p_base is None or paper.get(row) is None else paper[row] - p_base}
        if baseline is not None and row != baseline:
            shared = sorted(set(ok) & set(base_ok))
            if len(shared) < 2:
                r["verdict"] = f"n < 2 paired seeds ({len(shared)})"
            else:
                c = stats.paired_seeds([base_ok[k] for k in shared], [ok[k] for k in shared])
                paper_diff = None if math.isnan(r["paper_diff"]) else r["paper_diff"] / scale
                r.update(diff=c.diff * scale, ci_low=c.ci[0] * scale, ci_high=c.ci[1] * scale, p=c.p,
                         verdict=stats.verdict(c, paper_diff), n_paired=len(shared))
            every = {**ok, **measured(cells[row], failed, metric)}
            shared_all = sorted(set(every) & set(base_all))
            if (len(every) > len(ok) or len(base_all) > len(base_ok)) and len(shared_all) >= 2:
                c = stats.paired_seeds([base_all[k] for k in shared_all], [every[k] for k in shared_all])
                r.update(diff_all=c.diff * scale, ci_low_all=c.ci[0] * scale, ci_high_all=c.ci[1] * scale,
                         p_all=c.p, n_all=len(shared_all))
        elif row == baseline:
            r["verdict"] = "baseline"
        out.append(r)
    return pd.DataFrame(out, columns=["row", *COLUMNS, "n_paired", *ALL_COLUMNS]).set_index("row")


def _num(x) -> float:
    return math.nan if x is None else float(x)


def _failed_text(failed: dict[int, str], total: int) -> str:
    if not failed:
        return ""
    reasons = "; ".join(f"seed {s}: {r}" for s, r in failed.items())
    return f"{len(failed)} of {total} failed ({reasons})"


def _pm(x: float, digits: int = 1) -> str:
    return f"{x:+.{digits}f}"


def sentence(row: str, r: Mapping, baseline: str, unit: str = "points") -> str:
    """One conclusion sentence for table row ``r`` (a row of ``compare``) against ``baseline``."""
    if r["verdict"] == "baseline":
        return f"{row} (baseline): {r['ours']}."
    failed = f" {r['failed']}." if r.get("failed") else ""
    d_all = r.get("diff_all", math.nan)
    if d_all is not None and not math.isnan(d_all):  # the sensitivity check: the failed seeds' values counted
        failed += (f" Counting the failed seeds of this row and the baseline at their measured values (they finished "
                   f"training): {_pm(d_all)} {unit} "
                   f"[95 % CI {_pm(r['ci_low_all'])}, {_pm(r['ci_high_all'])}], p = {r['p_all']:.3f}, "
                   f"paired over {int(r['n_all'])} seeds.")
    if math.isnan(r["diff"]):
        return f"{row} vs {baseline}: not compared ({r['verdict'] or 'no healthy seeds'}).{failed}"
    n = r.get("n_paired", math.nan)
    n = int(r["n"] if n is None or math.isnan(n) else n)
    effect = (f"{_pm(r['diff'])} {unit} [95 % CI {_pm(r['ci_low'])}, {_pm(r['ci_high'])}], "
              f"p = {r['p']:.3f}, paired over {n} seeds")
    paper_diff = r.get("paper_diff", math.nan)
    paper = "" if math.isnan(paper_diff) else f"; the paper reports {_pm(paper_diff)}"
    words = {
        "no significant difference": "no significant difference",
        "B better": "better than the baseline",
        "B worse": "worse than the baseline",
        "reproduced": "the paper's direction is reproduced",
        "contradicted": "significant in the direction opposite to the paper",
    }
    word = words.get(r["verdict"], r["verdict"])
    return f"{row} vs {baseline}: {effect}: {word}{paper}{_fragile(r['p'], n)}.{failed}"


BORDERLINE = (0.005, 0.2)  # p in this range: new seeds land on either side of 0.05 with a fair chance


def _fragile(p: float, n: int) -> str:
    """``"; new seeds reach p < 0.05 with chance ~55 %"`` for a p near the line (``BORDERLINE``), else ``""``:
    the reader sees which verdicts a rerun (another machine, another thread count) may turn over
    (``fgic.stats.rerun_significant``)."""
    lo, hi = BORDERLINE
    if not lo <= p < hi or n < 2:
        return ""
    return f"; new seeds reach p < 0.05 with chance ~{100 * stats.rerun_significant(p, n):.0f} %"


def conclusions(table: pd.DataFrame, baseline: str, unit: str = "points") -> list[str]:
    """One sentence per row of a ``compare`` table, computed from its numbers (nothing hand-written)."""
    return [sentence(str(row), dict(r), baseline, unit) for row, r in table.iterrows()]


def claim(text: str, table: pd.DataFrame | None = None, row: str | None = None,
          not_testable: str | None = None) -> str:
    """One line for a paper claim: ``"<claim>: reproduced | contradicted | no significant difference |
    not testable here (why)"``, the word taken from ``table.loc[row, "verdict"]``."""
    if not_testable:
        return f"{text}: not testable here ({not_testable})"
    if table is None or row not in table.index:
        return f"{text}: not testable here (row {row!r} not run)"
    v = str(table.loc[row, "verdict"])
    if v.startswith("n < 2"):
        return f"{text}: not testable here ({v})"
    word = {"B better": "no paper number to compare; ours is better",
            "B worse": "no paper number to compare; ours is worse"}.get(v, v)
    return f"{text}: {word}"


def seed_values(cells: Mapping[str, Mapping[int, object]], metric: str = "test_top1",
                scale: float = 100.0) -> tuple[dict[str, list[float]], dict[str, list[str]]]:
    """``({row: [healthy values]}, {row: [failure reasons]})`` of ``cells``, the two arguments of
    ``fgic.viz.plot_ablation(data, failed=...)`` (bars = mean, error bars = std, dots = seeds)."""
    data, failed = {}, {}
    for row, cell in cells.items():
        ok, bad = healthy(cell, metric)
        data[row] = [v * scale for v in ok.values()]
        if bad:
            failed[row] = [r.split(":")[0] for r in bad.values()]
    return data, failed
