"""Experiment module of notebook 04: GHOLM-Net, S. Zheng, G. Wang, "Study on Fine-grained Image Classification
Based on ConvNeXt Heatmap Localization and Contrastive Learning", Computer Science 50(10):119-125, 2023.

The surface every notebook shares (``fgic.experiments.base``): ``NOTEBOOK``, ``grid(S)``, ``paper_numbers()``,
``tables(S, records)`` and ``conclusions(S, records)``, with ``S`` the typed settings ``fgic.settings.GHOLM``
(``fgic.profiles.settings("04_gholm_net", profile)``). Every run is named ``base.run_name(data set, row, seed)``:

- ``benchmark:<row>:s<seed>``: Tables 2 / 3, the four cumulative rows of ``ROWS`` (Raw; +Crop; +Sup; +Drop =
  the full model), every seed of ``S.seeds``, on the embedded benchmark (or your data in its place);
- ``benchmark:mu=<mu>:s<seed>``: Table 4, the full model trained with each mu of ``S.mu_values`` (mu = 1.7 is
  the +Drop run itself, never trained twice);
- ``benchmark@<scale>:<row>:s<seed>``: Raw and the full model on the benchmark rendered with a smaller bird
  (``S.object_scales``; the benchmark's own scale is the ablation's runs), where cropping should help most;
- ``<data set>:<row>:s<seed>`` (paper profile): the same rows on the real data sets of ``S.datasets`` (table
  -> data set; seeds ``S.real_seeds``): Tables 2 / 3 / 4 and the Raw (ConvNeXt-S) and full rows of Tables 6-9.

Table 5 and the test-time mu sweep need no training: ``evaluate(S, records)`` scores every seed's trained full
model with the raw, crop and raw + crop logits and with each mu of ``S.mu_eval`` applied at test time, and
returns record-like entries under the same name format (``benchmark:crop logits:s0``, ``benchmark:mu=1.6 at
test time:s0``) that ``tables`` / ``conclusions`` read beside the training records.

smoke / default run the embedded benchmark only, with a narrow ResNet18 backbone trained from scratch
(``gholm_resnet18``: a CPU-size stand-in for the paper's ConvNeXt-S; ``S.bench_model_kw``, ``S.bench_train``).
The paper profile adds the real data sets with ConvNeXt-S and ImageNet weights (``pretrained``;
``S.pretrained_tags``: ImageNet-21k, ImageNet-1k for Stanford Dogs, as the paper says), the ``gholm`` transform
preset at 448 px (Stanford Dogs: resized straight to 448) and the paper's SGD schedule.

Original resolution for the Crop branch (the paper crops "on the original image"): every GHOLM run's data
set delivers the augmented view at ``source_scale`` (benchmark: ``bench_source_scale``) times the network
input size (the benchmark is rendered at that size; a real data set's ``gholm`` transform resizes and crops
at it), and the model (``input_size``) resizes it for the Raw and Drop branches and cuts the crop from it.

Which images: the training split is ``build_dataset(..., split="train", **data_kw)``; the paper profile sets
``data_kw: {val_fraction: 0}`` for the real data sets (the whole official training split, as the paper), the
benchmark keeps its seeded 10 % validation split. Every test-time subset (Table 5, the mu sweep, Fig. 6,
crop scores) is class-balanced and seeded (``fgic.data.subsets.balanced_sample``).

Your own data: with ``S.data`` (``fgic.profiles.settings(..., dataset="folder", data_root=...)``) the
benchmark column trains on it with the benchmark's model and schedule (``fgic.profiles.data_source``); the
object-scale grid, a knob of the generator, is then empty.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from fgic import evidence, profiles
from fgic.data.subsets import balanced_sample, targets_of
from fgic.experiments import base
from fgic.experiments.base import Conclusion
from fgic.runs import RunSpec
from fgic.settings import GHOLM

NOTEBOOK = "04_gholm_net"
BENCHMARK = base.BENCHMARK  # the embedded benchmark's column (or your data in its place)
DATASETS = {"cub": "CUB-200-2011", "cars": "Stanford Cars", "aircraft": "FGVC-Aircraft", "dogs": "Stanford Dogs"}
ROWS = {  # Tables 2 / 3, cumulative: GHOLMNet switches of each row
    "Raw": dict(use_crop=False, use_supcon=False, use_drop=False),
    "+Crop": dict(use_supcon=False, use_drop=False),
    "+Sup": dict(use_drop=False),
    "+Drop": {},  # the full model
}
RAW, FULL = "Raw", "+Drop"
DEFAULT_MU = 1.7  # GHOLMNet's default, the paper's choice (Table 4)
ABLATION = {"table2": "cub", "table3": "cars"}  # the paper's ablation tables and their data sets
COMPARISON = {"table6": "cars", "table7": "cub", "table8": "aircraft", "table9": "dogs"}
OURS = {"ConvNeXt [9]": RAW, "GHOLM-Net (ours)": FULL}  # Tables 6-9: the paper's label of our two rows
LOGIT_MODES = ("raw", "crop", "both")  # Table 5
LOGIT_ROWS = {"raw": "raw logits", "crop": "crop logits", "both": "raw + crop logits"}  # Table 5's rows
STEPS = "steps"  # table name suffix: each ablation row against the row above it


def load_numbers() -> dict:
    """The paper's published numbers (``gholm_numbers.yaml``); Table 4's keys are floats (mu)."""
    return yaml.safe_load(Path(__file__).with_name("gholm_numbers.yaml").read_text())


def paper_numbers() -> pd.DataFrame:
    """The paper's numbers, long format (table, dataset, row, metric, value), top-1 in %: rows as in ``tables``
    (Tables 2-3: ``ROWS``; Table 4: ``mu_row``; Table 5: ``LOGIT_ROWS``; Tables 6-9: the printed method names)."""
    n = load_numbers()
    rows = [(t, n[t]["dataset"], r, "top1", v) for t in ABLATION for r, v in n[t]["rows"].items()]
    rows += [("table4", n["table4"]["dataset"], mu_row(m), "top1", v) for m, v in n["table4"]["mu"].items()]
    rows += [("table5", n["table5"]["dataset"], LOGIT_ROWS[m], "top1", v) for m, v in n["table5"]["rows"].items()]
    rows += [(t, n[t]["dataset"], r["method"], "top1", r["acc"]) for t in COMPARISON for r in n[t]["rows"]]
    return base.paper_frame(rows)


def mu_row(mu: float) -> str:
    """Row label of a crop threshold factor: ``"mu=1.6"``."""
    return f"mu={float(mu):g}"


def test_mu_row(mu: float) -> str:
    """Row label of the full model evaluated with ``mu`` at test time (no training): ``"mu=1.6 at test time"``."""
    return f"{mu_row(mu)} at test time"


def scale_label(scale: float) -> str:
    """Data set label of the benchmark rendered with bird size ``scale``: ``"benchmark@0.5"``."""
    return f"{BENCHMARK}@{float(scale):g}"


# ------------------------------------------------------------------------------------------- grid
def spec(S: GHOLM, dataset: str, seed: int = 0, object_scale: float | None = None, **gholm_kw) -> RunSpec:
    """One run: GHOLM-Net with switches ``gholm_kw`` on ``dataset`` (``BENCHMARK`` or a ``DATASETS`` key)."""
    if dataset == BENCHMARK and S.data:  # the benchmark column on your data: the benchmark's model and
        if object_scale is not None:  # schedule, the view resized to bench_source_scale x the input size
            raise ValueError("object_scale is a knob of the embedded benchmark only")
        data, data_kw, size = profiles.data_source(S)
        model, model_kw, train = S.bench_model, dict(S.bench_model_kw), S.bench_train
        transform, pretrained = S.bench_transform, False
        transform_kw = {"image_size": size * int(S.bench_source_scale)}
    elif dataset == BENCHMARK:
        bench = S.benchmark.kw()
        if object_scale is not None:
            bench["object_scale"] = object_scale
        model, model_kw, train = S.bench_model, dict(S.bench_model_kw), S.bench_train
        size = bench["image_size"]  # the network's input size
        bench["image_size"] = size * int(S.bench_source_scale)  # rendered at the original resolution
        data, data_kw, transform = "synthetic", bench, S.bench_transform
        transform_kw, pretrained = {"image_size": bench["image_size"]}, False
    elif dataset in DATASETS:
        if object_scale is not None:
            raise ValueError("object_scale is a knob of the embedded benchmark only")
        model, model_kw, train = S.model, dict(S.model_kw), S.train
        data, data_kw, transform = dataset, dict(S.data_kw), S.transform
        size = S.image_size
        source = size * int(S.source_scale)  # the view the crop is cut from
        transform_kw = {"image_size": source, **({"dogs": True} if dataset == "dogs" else {})}
        pretrained = S.pretrained
        tag = S.pretrained_tags.get(dataset)
        if tag:
            model_kw["pretrained_tag"] = tag
    else:
        raise KeyError(f"unknown data set {dataset!r}; use {BENCHMARK!r} or one of {list(DATASETS)}")
    if transform_kw["image_size"] != size:
        model_kw["input_size"] = size  # the model resizes the larger view for the Raw / Drop branches
    return RunSpec(
        model=model,
        dataset=data,
        model_kw={**model_kw, **gholm_kw},
        data_kw=data_kw,
        transform=transform,
        transform_kw=transform_kw,
        train={**train, "seed": seed},
        pretrained=pretrained,
    )


def real_datasets(S: GHOLM) -> list[str]:
    """The real data sets this profile trains on (paper profile), in the order of ``S.datasets``."""
    return list(dict.fromkeys(S.datasets.values()))


@base.with_extra_seeds
def grid(S: GHOLM) -> dict[str, RunSpec]:
    """Every run of the profile, ``{base.run_name(data set, row, seed): RunSpec}``; no run twice (the full model
    is also Table 4's mu = 1.7 and the object-scale grid's run at the benchmark's own scale)."""
    out: dict[str, RunSpec] = {}

    def add(label: str, data: str, row: str, seeds, **kw):
        for seed in seeds:
            out[base.run_name(label, row, seed)] = spec(S, data, seed, **kw)

    for row, kw in ROWS.items():  # Tables 2 / 3 on the benchmark
        add(BENCHMARK, BENCHMARK, row, S.seeds, **kw)
    for m in S.mu_values:  # Table 4 on the benchmark
        if m != DEFAULT_MU:
            add(BENCHMARK, BENCHMARK, mu_row(m), S.seeds, mu=float(m))
    own = S.benchmark.object_scale
    for scale in [] if S.data else S.object_scales:  # bird size: a knob of the embedded benchmark only
        if scale != own:
            for row in (RAW, FULL):
                add(scale_label(scale), BENCHMARK, row, S.seeds, object_scale=scale, **ROWS[row])
    real = S.real_seeds
    for t in ABLATION:  # paper profile: Tables 2 / 3 on their data sets
        if d := S.datasets.get(t):
            for row, kw in ROWS.items():
                add(d, d, row, real, **kw)
    if d := S.datasets.get("table4"):
        for m in load_numbers()["table4"]["mu"]:
            if m != DEFAULT_MU:
                add(d, d, mu_row(m), real, mu=float(m))
    for t in ("table5", *COMPARISON):  # Table 5 evaluates the full model; Tables 6-9 compare it with Raw
        if d := S.datasets.get(t):
            for row in (RAW, FULL) if t in COMPARISON else (FULL,):
                add(d, d, row, real, **ROWS[row])
    return out


# ------------------------------------------------------------------------------------------- evaluation
def evaluate(S: GHOLM, records: dict, device: str = "cpu") -> dict[str, dict]:
    """Table 5 and the test-time mu sweep without training: every seed's trained full model, scored with the raw,
    crop and raw + crop logits at mu = 1.7 (``LOGIT_ROWS``) and with the raw + crop logits at each mu of
    ``S.mu_eval`` (``test_mu_row``), on ``S.n_eval`` class-balanced, seeded test images of the benchmark (the
    whole test split of Table 5's real data set in the paper profile).

    Returns ``{base.run_name(column, row, seed): record-like dict}`` with ``metrics.test_top1`` and the trained
    run's ``status`` / ``history`` / ``num_classes``, so ``fgic.health`` judges the model behind each number
    (a collapsed model's evaluations are failed seeds too)."""
    jobs = [(BENCHMARK, S.seeds, S.n_eval, S.mu_eval)]
    if d := S.datasets.get("table5"):
        jobs.append((d, S.real_seeds, None, []))
    out = {}
    for column, seeds, limit, mus in jobs:
        for seed in seeds:
            rec = records.get(base.run_name(column, FULL, seed))
            if rec is None:
                continue
            if rec.get("status", "finished") != "finished":  # no weights: the failure carries over
                failed = {k: rec[k] for k in ("status", "error") if k in rec}
                rows = [*LOGIT_ROWS.values(), *map(test_mu_row, mus)]
                out.update({base.run_name(column, row, seed): failed for row in rows})
                continue
            model, ds = rec.predictor(device).model, test_set(rec.spec)
            for m in dict.fromkeys([DEFAULT_MU, *mus]):
                acc = logit_mode_accuracy(rec, mu=m, limit=limit, model=model, dataset=ds, device=device, seed=S.seed)
                rows = {LOGIT_ROWS[k]: k for k in LOGIT_MODES} if m == DEFAULT_MU else {}
                if m in mus:
                    rows[test_mu_row(m)] = "both"
                for row, mode in rows.items():
                    out[base.run_name(column, row, seed)] = {**{k: v for k, v in acc.items() if k != "metrics"},
                                                             "metrics": {"test_top1": acc["metrics"][f"top1_{mode}"]}}
    return out


# ------------------------------------------------------------------------------------------- tables
def _steps(cells: dict, paper: dict) -> pd.DataFrame:
    """Each cumulative row against the row above it (paired over seeds): what each branch adds by itself.
    A ``compare`` table per pair, their compared rows stacked; column ``vs``: the row above."""
    rows = list(cells)
    parts = []
    for a, b in zip(rows, rows[1:]):
        t = evidence.compare({a: cells[a], b: cells[b]}, a, {k: paper[k] for k in (a, b) if k in paper})
        parts.append(t.loc[[b]].assign(vs=a))
    return pd.concat(parts)


def tables(S: GHOLM, records: dict) -> dict[str, pd.DataFrame]:
    """The comparison tables (``fgic.evidence.compare``) of the runs in ``records`` (plus ``evaluate``'s
    entries, where given), named ``"<paper table>/<column>"``:

    - ``table2/<col>``: the ablation, paired against Raw; paper: Table 2 (CUB-200-2011) (on the benchmark also
      Table 3's Stanford Cars numbers, column ``paper: table3``); ``table2-steps/<col>``: each row against the
      row above; on the real data sets ``table3/cars`` and ``table3-steps/cars`` as well;
    - ``table4/<col>``: mu trained, against mu = 1.7 (where this profile trains it); ``table4-test-time/
      benchmark``: mu applied at test time to the full model (no paper column: the paper trains per mu);
    - ``table5/<col>``: the test-time logits, against the raw logits;
    - ``object-scale/benchmark@<s>``: Raw against the full model on smaller birds (no paper number);
    - ``table6/cars`` ... ``table9/dogs`` (paper profile): ConvNeXt-S (Raw) against GHOLM-Net.

    A column is the embedded benchmark (``benchmark``: your data when ``S.data`` is set) or a real data set;
    the paper's numbers are always those of the data set in the paper's table (e.g. CUB-200-2011)."""
    num = paper_numbers()
    n = load_numbers()
    out: dict[str, pd.DataFrame] = {}
    columns = [(BENCHMARK, S.seeds)] + [(d, S.real_seeds) for d in real_datasets(S)]
    for col, seeds in columns:
        on_bench = col == BENCHMARK
        for t, d in ABLATION.items():
            if on_bench and t != "table2" or not on_bench and S.datasets.get(t) != col:
                continue  # the benchmark shows Tables 2 and 3 in one table (same runs)
            cells = base.cells(records, col, ROWS, seeds)
            paper = base.paper_column(num, t, d)
            out[f"{t}/{col}"] = table = evidence.compare(cells, RAW, paper)
            if on_bench:
                table.insert(1, "paper: table3", [n["table3"]["rows"].get(r, math.nan) for r in table.index])
            out[f"{t}-{STEPS}/{col}"] = _steps(cells, paper)
        mus = S.mu_values if on_bench else list(n["table4"]["mu"]) if S.datasets.get("table4") == col else []
        if mus:
            rows = [mu_row(m) for m in sorted({*mus, DEFAULT_MU})]
            cells = base.cells(records, col, rows, seeds)
            cells[mu_row(DEFAULT_MU)] = base.cells(records, col, [FULL], seeds)[FULL]  # the same run
            out[f"table4/{col}"] = evidence.compare(cells, mu_row(DEFAULT_MU), base.paper_column(num, "table4", "cub"))
        if on_bench and S.mu_eval:
            rows = [test_mu_row(m) for m in sorted({*S.mu_eval, DEFAULT_MU})]
            cells = base.cells(records, col, rows, seeds)
            if any(c is not None for cell in cells.values() for c in cell.values()):
                out[f"table4-test-time/{col}"] = evidence.compare(cells, test_mu_row(DEFAULT_MU))
        if on_bench or S.datasets.get("table5") == col:
            cells = base.cells(records, col, LOGIT_ROWS.values(), seeds)
            if any(c is not None for cell in cells.values() for c in cell.values()):
                paper = base.paper_column(num, "table5", "cub")
                out[f"table5/{col}"] = evidence.compare(cells, LOGIT_ROWS["raw"], paper)
        for t, d in COMPARISON.items():
            if not on_bench and d == col and S.datasets.get(t) == d:
                printed = base.paper_column(num, t, d)
                cells = base.cells(records, col, [RAW, FULL], seeds)
                out[f"{t}/{col}"] = evidence.compare(cells, RAW, {OURS[k]: v for k, v in printed.items() if k in OURS})
    if not S.data:
        own = S.benchmark.object_scale
        for scale in S.object_scales:
            if scale != own:
                label = scale_label(scale)
                out[f"object-scale/{label}"] = evidence.compare(base.cells(records, label, [RAW, FULL], S.seeds), RAW)
    return out


def frame(table: pd.DataFrame) -> pd.DataFrame:
    """A ``tables`` table as shown: paper | ours (mean +- std, n) | diff vs the baseline [95 % CI] | p | verdict |
    failed seeds (plus ``paper: table3`` and ``vs`` where the table has them)."""

    def diff(r) -> str:
        if math.isnan(r["diff"]):
            return ""
        return f"{r['diff']:+.1f} [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]"

    out = pd.DataFrame(index=table.index)
    for col in ("paper", "paper: table3", "ours", "vs"):
        if col in table and not table[col].isna().all():  # no paper column where the paper has no number
            out[col] = table[col]
    out["diff [95 % CI]"] = [diff(r) for _, r in table.iterrows()]
    if not table["paper_diff"].isna().all():
        out["paper diff"] = table["paper_diff"].round(1)
    out["p"] = table["p"].round(3)
    out["verdict"], out["failed seeds"] = table["verdict"], table["failed"]
    return out


_WHAT = {
    "table2": "Tables 2 / 3, the branch ablation (rows cumulative), each row against Raw",
    "table3": "Table 3, the branch ablation (rows cumulative), each row against Raw",
    "table2-steps": "Tables 2 / 3, what each branch adds: each row against the row above it (`vs`)",
    "table3-steps": "Table 3, what each branch adds: each row against the row above it (`vs`)",
    "table4": "Table 4, the crop threshold mu of eq. (5), one model trained per mu, against mu = 1.7",
    "table4-test-time": "mu of eq. (5) applied at test time to the trained full model (raw + crop logits), against "
    "mu = 1.7; the paper trains one model per mu (Table 4), so the paper column is empty here",
    "table5": "Table 5, the test-time logits of the trained full model, against the raw logits",
    "object-scale": "Raw against the full model when the bird is smaller (no paper table: the benchmark's question)",
    **{t: f"Table {t[5:]}, ConvNeXt-S (Raw) against GHOLM-Net" for t in COMPARISON},
}


def caption(S: GHOLM, name: str) -> str:
    """The caption of table ``name`` of ``tables``: what it compares, where the paper's numbers come from, what
    "ours" is, the test and the number of seeds."""
    t, col = name.split("/")
    table = t.removesuffix(f"-{STEPS}")
    if col.startswith(BENCHMARK):
        b = S.benchmark
        scale = col.partition("@")[2] or b.object_scale
        ours = (f"your data ({S.data.dataset}, {S.data.image_size} px)" if S.data else
                f"the embedded benchmark ({b.num_classes} classes, {b.image_size} px, bird size {scale})")
        kw = "".join(f" {k} {v}" for k, v in S.bench_model_kw.items())
        ours += f", `{S.bench_model}`{kw} from scratch (a small stand-in for ImageNet ConvNeXt-S)"
        seeds = S.seeds
    else:
        ours, seeds = f"{DATASETS[col]}, `{S.model}` with ImageNet weights", S.real_seeds
    numbers = load_numbers()
    if t == "table2" and col == BENCHMARK:
        paper = "paper: CUB-200-2011 (Table 2); `paper: table3`: Stanford Cars (Table 3)"
    elif table == "table4-test-time":
        paper = "paper column empty (the paper trains one model per mu; its Table 4 is in the figure)"
    elif table in numbers:
        paper = f"paper: {DATASETS[numbers[table]['dataset']]} (Table {table[5:]})"
    else:
        paper = "no paper number"
    images = f" on {S.n_eval} class-balanced test images" if table in ("table4-test-time", "table5") and \
        col == BENCHMARK else ""
    n = len(seeds)
    return (f"**{_WHAT[t]}.** {paper}; ours: {ours}{images}. diff: paired t-test over seeds, 95 % CI, in points of "
            f"top-1 %; n = {n} seed{'s' if n > 1 else ''} per row ({list(seeds)}); failed seeds are listed, never "
            "averaged in.")


def quoted(table: str) -> pd.DataFrame:
    """Tables 6-9 as printed (the other methods are quoted, none is run here): method, backbone, top-1 %."""
    t = load_numbers()[table]
    df = pd.DataFrame(t["rows"]).rename(columns={"acc": f"paper: {DATASETS[t['dataset']]} top-1 %"})
    df["ours"] = df["method"].map(OURS).fillna("(quoted; not implemented in fgic)")
    return df.set_index("method")


# ------------------------------------------------------------------------------------------- conclusions
def _baseline(table: pd.DataFrame) -> str:
    return str(table.index[table["verdict"] == "baseline"][0])


def _verdict(table: pd.DataFrame | None, row: str, not_testable: str | None) -> str:
    if not_testable or table is None or row not in table.index:
        return "not testable"
    v = str(table.loc[row, "verdict"])
    return "not testable" if v.startswith("n < 2") else v


def _claim(key: str, text: str, table=None, row=None, not_testable=None) -> Conclusion:
    return Conclusion(key, evidence.claim(text, table, row, not_testable=not_testable),
                      _verdict(table, row, not_testable), *base.row_numbers(table, row))


REAL_DATA = ("{what} and ImageNet-21k ConvNeXt-S weights: run the paper profile on a GPU "
             "(PROFILE=\"paper\", the data root in the FGIC_DATA environment variable)")  # no dollar: Markdown math


def claims(S: GHOLM, T: dict[str, pd.DataFrame]) -> list[Conclusion]:
    """One line per claim of the paper (abstract, section 4.3 and the conclusion): reproduced / contradicted /
    no significant difference / not testable here (why), from the tables ``T`` of ``tables``."""
    where = {BENCHMARK: "your data" if S.data else "the benchmark (ResNet18 stand-in, from scratch)",
             **{d: DATASETS[d] for d in DATASETS}}
    out = []
    cols = [BENCHMARK] + [d for d in ABLATION.values() if f"table2-{STEPS}/{d}" in T or f"table3-{STEPS}/{d}" in T]
    for col in cols:
        steps = T.get(f"table2-{STEPS}/{col}", T.get(f"table3-{STEPS}/{col}"))
        on = f" [on {where[col]}]"
        out += [
            _claim(f"claim/crop/{col}", "The Grad-CAM crop branch raises top-1 over the backbone alone "
                   "(Tables 2 / 3: +0.8 / +1.1)" + on, steps, "+Crop"),
            _claim(f"claim/sup/{col}", "Supervised contrastive learning over the raw and crop views adds to "
                   "the crop branch (+0.2 / +0.3)" + on, steps, "+Sup"),
            _claim(f"claim/drop/{col}", "Attention erasing (Drop branch) adds to Crop + Sup (+0.2 / +0.3)" + on,
                   steps, "+Drop"),
        ]
    ablation = T.get(f"table2/{BENCHMARK}")
    out.append(_claim(f"claim/full/{BENCHMARK}", "GHOLM-Net beats its own backbone (ConvNeXt-S: +1.2 CUB, "
                      f"+1.7 Cars, +2.1 Aircraft, +1.0 Dogs) [on {where[BENCHMARK]}]", ablation, FULL))
    real = {t: d for t, d in COMPARISON.items() if f"{t}/{d}" in T}
    for t, d in real.items():
        out.append(_claim(f"claim/full/{d}", f"GHOLM-Net beats ConvNeXt-S on {DATASETS[d]} (Table {t[5:]})",
                          T[f"{t}/{d}"], FULL))
    if not real:
        out.append(_claim("claim/full/real-data", "GHOLM-Net beats ConvNeXt-S on CUB-200-2011, Stanford Cars, "
                          "FGVC-Aircraft and Stanford Dogs (Tables 6-9)",
                          not_testable="needs " + REAL_DATA.format(what="the four real data sets")))
    mu = next((T[k] for k in (f"table4/{d}" for d in [S.datasets.get("table4"), BENCHMARK]) if k in T), None)
    if mu is None:
        out.append(_claim("claim/mu", "mu = 1.7 is the best crop threshold of eq. (5) (Table 4: 1.6 -> 91.5, "
                          "1.7 -> 91.8, 2.1 -> 91.4)", not_testable="no model is trained per mu in this profile "
                          "(mu_values is empty; the test-time sweep answers another question): set "
                          "mu_values=[1.6, 1.7, 2.1] or run the paper profile"))
    else:
        for row in (mu.index[0], mu.index[-1]):
            if row != mu_row(DEFAULT_MU):
                out.append(_claim(f"claim/mu/{row}", f"mu = 1.7 beats {row} (Table 4)", mu, row))
    logits = next((T[k] for k in (f"table5/{d}" for d in [S.datasets.get("table5"), BENCHMARK]) if k in T), None)
    out.append(_claim("claim/logits", "Adding the crop logits to the raw logits at test time beats the raw logits "
                      "alone (Table 5: +0.2)", logits, LOGIT_ROWS["both"],
                      None if logits is not None else "the test-time evaluations were not run (evaluate)"))
    out.append(_claim("claim/rank", "91.8 / 94.9 / 94.0 / 94.4 % on CUB / Cars / Aircraft / Dogs, better than "
                      "mainstream methods, top-3 on CUB and top-1 on Dogs (Tables 6-9)",
                      not_testable="the other methods are quoted from the paper, not implemented in fgic; our two "
                      "rows need " + REAL_DATA.format(what="the four real data sets")))
    return out


def conclusions(S: GHOLM, records: dict) -> list[Conclusion]:
    """The "What this shows" lines: one per compared row of every table (``base.table_conclusions``; the steps
    tables against the row above), then one per claim of the paper (``claims``)."""
    T = tables(S, records)
    out = []
    for name, t in T.items():
        if name.split("/")[0].endswith(STEPS):
            out += [Conclusion(f"{name}/{row}", evidence.sentence(str(row), dict(r), r["vs"]), str(r["verdict"]),
                               *base.row_numbers(t, row)) for row, r in t.iterrows()]
        else:
            out += base.table_conclusions(name, t, _baseline(t))
    return out + claims(S, T)


_TEST_SETS: dict[str, object] = {}


def test_set(spec_: RunSpec):
    """The test split of ``spec_`` with its evaluation transform, as ``fgic.runs.build_data`` builds it (data seed 0:
    the same for every training seed), built once per data set and transform (the test-time evaluations and crop
    scores ask for it once per trained seed)."""
    from fgic.data import build_dataset
    from fgic.data.transforms import build_transform

    key = json.dumps([spec_.dataset, spec_.data_kw, spec_.transform, spec_.transform_kw], sort_keys=True, default=str)
    if key not in _TEST_SETS:
        ev = build_transform(spec_.transform, train=False, **spec_.transform_kw)
        _TEST_SETS[key] = build_dataset(spec_.dataset, split="test", transform=ev, **{"seed": 0, **spec_.data_kw})
    return _TEST_SETS[key]


@contextmanager
def _mu(model, mu: float | None):
    old = model.mu
    model.mu = old if mu is None else mu
    try:
        yield model
    finally:
        model.mu = old


def logit_mode_accuracy(
    rec,
    mu: float | None = None,
    limit: int | None = None,
    batch_size: int = 100,
    device: str = "cpu",
    model=None,
    dataset=None,
    seed: int = 0,
) -> dict:
    """Table 5 without retraining: top-1 of one trained model with raw, crop and raw + crop logits.

    ``mu`` overrides the crop threshold factor at test time; ``limit`` evaluates a class-balanced, seeded
    subset of the test split (``balanced_sample``: ``limit // K`` images per class). Returns a record-like
    dict (``run_id`` of the model, ``n``, ``per_class``, ``metrics`` ``top1_<mode>``) for
    ``viz.paper_vs_ours``. Raw + crop is the sum of the other two (what ``predict_logits("both")`` does).
    """
    model = (model or rec.predictor(device).model).to(device).eval()  # GHOLM-Net: predict_logits
    ds = dataset if dataset is not None else test_set(rec.spec)
    idx = np.arange(len(ds)) if not limit or limit >= len(ds) else np.asarray(balanced_sample(ds, limit, seed))
    hits = dict.fromkeys(LOGIT_MODES, 0)
    with _mu(model, mu), torch.no_grad():
        for s in range(0, len(idx), batch_size):
            items = [ds[int(i)] for i in idx[s : s + batch_size]]
            x = torch.stack([a for a, _ in items]).to(device)  # (B, 3, H, W)
            y = torch.tensor([b for _, b in items], device=device)
            raw = model.predict_logits(x, "raw")  # (B, K)
            crop = model.predict_logits(x, "crop")  # raw logits again when the model has no Crop branch
            for mode, z in zip(LOGIT_MODES, (raw, crop, raw + crop)):
                hits[mode] += int((z.argmax(1) == y).sum())
    n = len(idx)
    per_class = np.bincount(targets_of(ds)[idx])
    return {
        "run_id": rec.run_id,
        "name": rec["name"],
        "n": n,
        "mu": model.mu if mu is None else mu,
        "per_class": sorted(set(per_class[per_class > 0].tolist())),
        "metrics": {f"top1_{m}": hits[m] / n for m in LOGIT_MODES},
        # the evaluated run's own status, history and classes: fgic.health judges the model behind these numbers
        **{k: rec[k] for k in ("status", "history", "num_classes", "error") if k in rec},
    }


def _area(b: torch.Tensor) -> torch.Tensor:
    return (b[..., 2:] - b[..., :2]).clamp_min(0).prod(-1)


def _inter(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt, rb = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    return (rb - lt).clamp_min(0).prod(-1)


def _centred(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Boxes (B, 4) of the same size as ``boxes``, centred in the (h, w) image: the reference crop."""
    half = (boxes[:, 2:] - boxes[:, :2]) / 2  # (B, 2)
    c = torch.tensor([w / 2, h / 2])
    return torch.cat([c - half, c + half], 1)


def _coverage(crop: torch.Tensor, obj: torch.Tensor, parts: list[torch.Tensor], hw: tuple[int, int]) -> dict:
    """Scores of one crop box (4,) against the object box (4,) and the discriminative part boxes (P, 4)."""
    p = torch.stack(parts)  # (P, 4)
    centre = (p[:, :2] + p[:, 2:]) / 2  # (P, 2)
    inside = (centre >= crop[:2]) & (centre <= crop[2:])  # (P, 2)
    return {
        "part_centres_in": float(inside.all(1).float().mean()),  # share of the parts whose centre is in the crop
        "all_part_centres_in": float(inside.all(1).all()),  # every discriminative part's centre is in the crop
        "part_covered": float((_inter(crop[None], p) / _area(p).clamp_min(1e-6)).mean()),  # area share, mean
        "object_covered": float(_inter(crop, obj) / _area(obj).clamp_min(1e-6)),
        "crop_area": float(_area(crop) / (hw[0] * hw[1])),  # share of the image the crop keeps
    }


def crop_coverage(model, dataset, indices, batch_size: int = 100, device: str = "cpu") -> pd.DataFrame:
    """Does GHOLM's crop box (eq. (5), Grad-CAM of the predicted class) contain the discriminative parts?

    One row per image of ``dataset[indices]`` (a data set with ``annotation(i)``: the embedded benchmark):
    the scores of ``_coverage`` for the crop box (``crop:`` columns) and for a box of the same size centred
    in the image (``centred:`` columns, the reference: how much a crop of that size keeps by itself), and
    whether the model's prediction was right.
    """
    import pandas as pd

    model = model.to(device).eval()
    rows = []
    for s in range(0, len(indices), batch_size):
        batch = [int(i) for i in indices[s : s + batch_size]]
        items = [dataset[i] for i in batch]
        x = torch.stack([a for a, _ in items]).to(device)  # (B, 3, H', W'): the data set's (original) view
        views = model.branch_views(x)
        h, w = views["inputs"].shape[-2:]  # boxes are on the input-size grid
        boxes = views["boxes"].cpu()  # (B, 4)
        for k, (i, box, ref) in enumerate(zip(batch, boxes, _centred(boxes, h, w))):
            ann = dataset.annotation(i)
            sx, sy = w / ann["size"][0], h / ann["size"][1]
            scale = torch.tensor([sx, sy, sx, sy])
            obj = torch.tensor(ann["object"], dtype=torch.float) * scale
            parts = [torch.tensor(ann["parts"][p], dtype=torch.float) * scale for p in ann["discriminative"]]
            row = {"index": i, "correct": int(views["classes"][k]) == items[k][1]}
            row.update({f"crop: {key}": v for key, v in _coverage(box, obj, parts, (h, w)).items()})
            row.update({f"centred: {key}": v for key, v in _coverage(ref, obj, parts, (h, w)).items()})
            rows.append(row)
    return pd.DataFrame(rows).set_index("index")


def branch_figure(model, images: torch.Tensor, titles=None, part_boxes=None, theta: float = 1.5):
    """Fig. 6: per image (a column) the original view (with its part boxes, in its pixels), the Grad-CAM
    overlay with the crop box (scaled onto the original view), the crop (cut from the original view, at the
    input size) and the erased input. ``images`` (B, 3, H', W') normalised, the data set's view (larger than
    the network input when the model has ``input_size``); ``theta`` fixed for the figure."""
    from fgic import viz
    from fgic.data.transforms import denormalize

    v = model.eval().branch_views(images, theta=torch.full((len(images),), theta))
    n = len(images)
    h, w = v["inputs"].shape[-2:]
    scale = torch.tensor([images.shape[-1] / w, images.shape[-2] / h] * 2)  # input grid -> original view
    orig, crops, erased = denormalize(images), denormalize(v["crops"]), denormalize(v["erased"]) * v["masks"]
    grid = [*orig, *orig, *crops, *erased]  # erased pixels shown black
    heat = [None] * n + list(v["heatmaps"]) + [None] * 2 * n
    crop_boxes = [[tuple((b.cpu() * scale).tolist()) + ("crop",)] for b in v["boxes"]]
    boxes = list(part_boxes or [None] * n) + crop_boxes + [None] * 2 * n
    names = (
        list(titles or [""] * n)
        + ["Grad-CAM + crop box"] * n
        + [f"crop ({w} px, from {images.shape[-1]} px)"] * n
        + [f"erased (theta={theta})"] * n
    )
    return viz.image_grid(grid, titles=names, heatmaps=heat, boxes=boxes, ncols=n, size=1.8), v


# ------------------------------------------------------------------------------------------- cost
def measure_cost(
    device: str = "cpu", iters: int | None = None, warmup: int | None = None, repeats: int | None = None
) -> dict:
    """``fgic.bench.gholm.main``: three-branch / one-branch training-step time; ``iters`` timed steps per
    block, ``repeats`` alternating blocks (the bench's defaults where None)."""
    from fgic.bench import gholm as bench

    return bench.main(device, steps=iters, repeats=repeats, warmup=warmup)
