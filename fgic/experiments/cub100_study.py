"""Experiment grid of notebook 07: a CPU-sized study on real CUB images (issue 13, item 7).

Rows (``S.rows``, ``params/07_cub100_cpu_study.yaml``): ResNet18 against ACANet-18 (paper 000, FCSA in the last
stage only, as notebook 01's default profile) and ResNet50 against CA-ResNet50 (paper 001, SE channel attention
in every bottleneck unit, as notebook 02), each pair at one width, from scratch, trained on the first
``S.num_classes`` classes of a CUB-200-2011 copy (the 100-class subset ``cub100``; ``fgic.data.first_classes``)
at ``S.image_size`` px with ``S.seeds`` seeds per row and pinned one-thread training (``train.threads``).

The data root is not part of a run's spec: ``use_root`` sets ``$FGIC_DATA`` (which every loader and the spawned
training workers read), so a run id depends on the data's files (``fgic.data.fingerprint``) and not on where they
lie. Without the data the run ids cannot be recomputed (the fingerprint is "missing"), so ``committed`` finds the
committed records of the grid by their spec (``params``), and the notebook shows those instead of training.

The surface of ``fgic.experiments.base``: ``NOTEBOOK``, ``grid``, ``paper_numbers``, ``tables``, ``conclusions``.
Run names: ``base.run_name(S.dataset, row, seed)``, e.g. ``"cub:ACANet18:s1"``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from fgic import evidence, paths
from fgic.experiments import base
from fgic.experiments.base import Conclusion
from fgic.runs import Record, RunSpec
from fgic.settings import Cub100Study

NOTEBOOK = "07_cub100_cpu_study"
PRETRAIN = False  # run-notebooks leaves this grid to the notebook: it decides at run time whether to train (the data)
LEARNED = 2.0  # "clearly above chance": every healthy seed at least this x chance (1 / K)
SUBSET = "first_classes"  # the registered class-subset data set (fgic.data.first_classes)
DEFAULT_ROOT = "shared/data/cub100"  # beside the checkout: <checkout>/../shared/data/cub100

# The papers' CUB-200-2011 top-1 (%), for reference only (full data, 224 px, 600 epochs from scratch / ImageNet
# weights): paper 000 (ACANet, Tan & Xu) Table 2, CE loss; paper 001 (Du & Ma) Table 1. Keyed by registry name:
# (table, the paper's row label, value). Also in acanet_numbers.yaml and multi_attention_numbers.yaml.
PAPER = {
    "resnet18": ("000 Table 2 (CE)", "ResNet 18", 52.50),
    "acanet18": ("000 Table 2 (CE)", "ACANet", 52.73),
    "resnet50": ("001 Table 1", "ResNet50", 76.4),
    "resnet50_ca_units": ("001 Table 1", "CA-ResNet50", 79.1),
    "resnet50_sa_units": ("001 Table 1", "SA-ResNet50", 78.4),
    "resnet50_csca_units": ("001 Table 1", "CSCA-ResNet50", 84.7),
}


# ------------------------------------------------------------------------------------------ data
def find_root(data_root: str | os.PathLike | None = "") -> Path | None:
    """The folder holding ``CUB_200_2011/``: ``data_root`` (the notebook's DATA_ROOT) if given, else ``$FGIC_DATA``,
    else ``<checkout>/../shared/data/cub100``; None when none of them holds ``CUB_200_2011/images.txt``."""
    cands = [data_root] if data_root else [os.environ.get("FGIC_DATA")]
    if not data_root and paths.project_root() is not None:
        cands.append(paths.project_root().parent / DEFAULT_ROOT)
    for c in cands:
        if c and (Path(c).expanduser() / "CUB_200_2011" / "images.txt").is_file():
            return Path(c).expanduser().resolve()
    return None


def use_root(root: str | os.PathLike) -> None:
    """Make ``root`` the data root of this process and of the training workers it spawns (``$FGIC_DATA``)."""
    from fgic.data import fingerprint

    os.environ["FGIC_DATA"] = str(root)
    fingerprint.clear()  # a fingerprint taken before (data "missing") is stale now


def data_kw(S: Cub100Study) -> dict:
    """``build_dataset`` options of every run: the first ``S.num_classes`` classes of ``S.dataset`` (or of your
    own data, ``S.data``), plus ``S.data_kw``."""
    if S.data is not None:  # DATASET / DATA_ROOT parameters: your data (its root is then part of the spec)
        return {"of": S.data.dataset, "num_classes": S.num_classes, **S.data.data_kw}
    return {"of": S.dataset, "num_classes": S.num_classes, **S.data_kw}


def data_here(S: Cub100Study) -> tuple[bool, str]:
    """``(present, what)``: whether the grid's data can be read here (its fingerprint), and what it is."""
    from fgic.data.fingerprint import fingerprint

    fp = fingerprint(SUBSET, data_kw(S))
    return fp["hash"] != "missing", fp["what"]


# ------------------------------------------------------------------------------------------ grid
def pairs(S: Cub100Study) -> dict[str, list[str]]:
    """``{baseline row: [its rows, baseline first]}``: each comparison of the study."""
    out: dict[str, list[str]] = {}
    for label, row in S.rows.items():
        if row.get("baseline"):
            out.setdefault(row["baseline"], [row["baseline"]]).append(label)
    return out


def spec(S: Cub100Study, row: str, seed: int) -> RunSpec:
    """The run of ``row`` with training seed ``seed`` (the data split is the same for every seed)."""
    r = S.rows[row]
    return RunSpec(model=r["model"], model_kw=dict(r.get("model_kw") or {}), dataset=SUBSET, data_kw=data_kw(S),
                   transform=S.transform, transform_kw={"image_size": S.image_size},
                   train={**S.train, "seed": int(seed)})


@base.with_extra_seeds
def grid(S: Cub100Study) -> dict[str, RunSpec]:
    """Every run: ``{base.run_name(S.dataset, row, seed): RunSpec}`` for each row of ``S.rows`` and seed of
    ``S.seeds`` (seed-major, so the two workers start on different rows)."""
    return {base.run_name(S.dataset, row, s): spec(S, row, s) for s in S.seeds for row in S.rows}


specs = grid  # the former name of ``grid`` in the experiment modules (tests that still call ``specs``)


# ------------------------------------------------------------------------------------------ committed records
def committed(S: Cub100Study, group: str | None = None) -> dict[str, Record]:
    """``{run name: record}`` of the finished records in ``runs/<group>/`` (default: ``S.profile``) whose spec
    equals one of the grid's (every field but the data's fingerprint, which needs the data): what the notebook
    shows when the data is absent here. Several records of one spec (made on different copies of the data):
    the latest finished."""
    want = {json.dumps(s.to_dict(), sort_keys=True): name for name, s in grid(S).items()}
    found: dict[str, Record] = {}
    for f in sorted((paths.runs_dir() / (group or S.profile)).glob("*/record.json")):
        try:
            rec = Record(json.loads(f.read_text()))
            key = json.dumps(RunSpec(**rec["params"]).to_dict(), sort_keys=True)
        except (ValueError, TypeError, KeyError):
            continue
        name = want.get(key)
        if name and rec.get("status") == "finished" and str(rec.get("finished", "")) >= str(
                found.get(name, {}).get("finished", "")):
            found[name] = rec
    return {n: found[n] for n in grid(S) if n in found}



def keep_committed(S: Cub100Study) -> bool:
    """Whether to show the committed records although the data is here: every run of the grid has one, some lack
    their weights (checkpoints are not committed, so ``train_many`` would retrain them: about 70 min on 2 cores,
    beyond the main job), and ``S.retrain_committed`` is off."""
    if S.retrain_committed:
        return False
    from fgic.runs import find

    g, recs = grid(S), committed(S)
    return bool(g) and len(recs) == len(g) and any(find(spec, S.profile) is None for spec in g.values())


def shown_records(S: Cub100Study) -> tuple[Cub100Study, dict[str, Record]]:
    """``(settings, records)`` to show when the data is absent: the committed records of ``S``'s grid, else (another
    profile without committed records, e.g. smoke in CI) those of the default profile with its settings."""
    recs = committed(S)
    if recs or S.profile == "default":
        return S, recs
    from fgic.profiles import settings

    D = settings(NOTEBOOK, "default", overrides=[])
    return D, committed(D, "default")

def provenance(records: dict) -> str:
    """Where the records were made: ``"<cpu> with <n> thread(s)"`` (each distinct one), and the data."""
    made = sorted({(str((r.get("env") or {}).get("cpu", "an unrecorded CPU")),
                    str((r.get("env") or {}).get("num_threads", "?"))) for r in records.values()})
    data = sorted({str((r.get("data") or {}).get("what", "?")) for r in records.values()})
    where = "; ".join(f"{cpu} with {n} thread{'s' if n != '1' else ''}" for cpu, n in made) or "nowhere"
    return f"{where} (data: {'; '.join(data)})"


def wall_time(records: dict) -> dict:
    """Time the grid took: ``span_min`` from the first start to the last finish (wall clock, runs side by side),
    ``worker_min`` the summed training time of the runs."""
    from datetime import datetime

    recs = [r for r in records.values() if r.get("started") and r.get("finished")]
    if not recs:
        return {"span_min": float("nan"), "worker_min": float("nan")}
    t = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%S%z")
    span = (max(t(r["finished"]) for r in recs) - min(t(r["started"]) for r in recs)).total_seconds()
    return {"span_min": span / 60, "worker_min": sum(float(r.get("wall_time", 0)) for r in recs) / 60}


# ------------------------------------------------------------------------------------------ evidence
def paper_numbers() -> pd.DataFrame:
    """The papers' CUB-200-2011 numbers of our rows' models (reference only: another scale entirely)."""
    return base.paper_frame([(t, "cub", row, "top1", v) for t, row, v in PAPER.values()])


def _paper(S: Cub100Study, rows: list[str]) -> dict[str, float]:
    """``{our row: the paper's number}`` when every row of the comparison comes from one paper table."""
    got = {r: PAPER.get(S.rows[r]["model"]) for r in rows}
    if any(v is None for v in got.values()) or len({v[0] for v in got.values()}) != 1:
        return {}
    return {r: v[2] for r, v in got.items()}


def cells(S: Cub100Study, records: dict, rows: list[str] | None = None) -> dict:
    """``{row: {seed: record or None}}`` of ``rows`` (default: all) over ``S.seeds``."""
    return base.cells(records, S.dataset, list(rows or S.rows), S.seeds)


def tables(S: Cub100Study, records: dict) -> dict[str, pd.DataFrame]:
    """``{"vs <baseline>": evidence.compare table}``: each comparison of ``pairs(S)``, paired over seeds, with
    the papers' CUB-200 numbers beside ours (their difference decides "reproduced" / "contradicted")."""
    return {f"vs {b}": evidence.compare(cells(S, records, rows), b, _paper(S, rows)) for b, rows in pairs(S).items()}


def table(S: Cub100Study, tabs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The frames of ``tables(S, records)`` in one, for display (index: comparison, row), chance added."""
    cols = ["paper", "ours", "diff", "ci_low", "ci_high", "p", "verdict", "failed"]
    frames = {k: t[cols] for k, t in tabs.items()}
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, names=["comparison", "row"])
    out.insert(2, "chance", 100.0 / S.num_classes)
    return out


def conclusions(S: Cub100Study, records: dict) -> list[Conclusion]:
    """Per row: whether it learned (mean top-1 against chance 1 / K, every seed healthy), then one sentence per
    compared row (``base.table_conclusions``) and the scale caveat (never a verdict about the papers' setting)."""
    chance = 100.0 / S.num_classes
    out = []
    for row, cell in cells(S, records).items():
        ok, failed = evidence.healthy(cell)
        if not ok:
            out.append(Conclusion(f"learned/{row}", f"{row}: no healthy seed ({len(failed)} failed).", "not run"))
            continue
        vals = [100 * v for v in ok.values()]
        lo = min(vals)
        above = lo >= LEARNED * chance
        out.append(Conclusion(
            f"learned/{row}",
            f"{row}: test top-1 {sum(vals) / len(vals):.1f} % (lowest seed {lo:.1f} %, {len(vals)} of {len(cell)} "
            f"seeds healthy) against chance {chance:.1f} % (1/{S.num_classes}): "
            + (f"clearly above chance (every seed at least {LEARNED:g} x chance)." if above
               else f"NOT clearly above chance (a seed under {LEARNED:g} x chance)."),
            "above chance" if above else "near chance"))
    for name, t in tables(S, records).items():
        out += base.table_conclusions(name, t, name.removeprefix("vs "))
    out.append(Conclusion(
        "scale", f"Scale: {S.num_classes} classes at {S.image_size} px, from scratch, narrow networks, "
        f"{S.train.get('epochs')} epochs on a CPU: a verdict here is about this small setting, not about the papers' "
        "(whole CUB-200 at 224 px, hundreds of epochs or ImageNet weights).", "caveat"))
    return out


def summary(records: dict) -> pd.DataFrame:
    """One row per run: name, test / val top-1 (%), epochs, minutes, run id."""
    rows = []
    for name, r in records.items():
        m = r.get("metrics") or {}
        rows.append({"run": name, "test_top1": 100 * m.get("test_top1", float("nan")),
                     "val_top1": 100 * m.get("val_top1", float("nan")), "epochs": len(r.get("history") or []),
                     "minutes": round(float(r.get("wall_time", 0)) / 60, 1), "run_id": r.get("run_id")})
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()
