"""Experiment module of notebook 01: "ACANet: A Fine-grained Image Classification Optimization Method Based on
Convolution and Attention Fusion" (Tan & Xu, 2023), Tables 2-4 and Figs. 8-9.

The surface every experiment module has (``fgic.experiments.base``), built from the typed settings ``S``
(``fgic.settings.ACANet``) of ``fgic.profiles.settings("01_acanet", profile)``:

- ``grid(S)``: every run, keyed ``base.run_name(column, row, seed)``: ``row`` is ``"<model>/<loss>"`` with the
  labels of ``MODEL_LABELS`` / ``LOSS_LABELS`` (e.g. ``"ACANet/MC"``, ``"ACANet-ACCB/CE"``), ``column`` is
  ``"benchmark"`` (the embedded benchmark, or your data in its place) or a real data set's registry name.
  Rows: Table 2 (``S.table2.models`` x ``.losses``), Table 3 (``S.table3.models`` under CE) on every column of
  ``S.datasets``; Table 4 (``S.table4.models`` x ``.losses``) on ``S.table4.datasets``; each with the seeds
  ``S.seeds`` (Table 4: ``S.table4_seeds()``). The tables share runs (Table 3's ResNet18 and ACANet rows are
  Table 2's CE rows, Table 4's complete rows are ACANet's Table 2 rows): a shared run is one entry.
- ``paper_numbers()``: the published top-1 (%) of ``acanet_numbers.yaml`` with the same row labels.
- ``tables(S, records)``: ``fgic.evidence.compare`` tables, every row paired with the baseline named in its
  ``vs`` column: ``table2/<column>`` (ACANet vs ResNet18 under the same loss), ``table2-losses/<column>`` (each
  loss vs CE with the same network), ``table3/<column>`` (backbones vs ResNet18, CE), ``table4/<column>``
  (every ablation row vs the complete ACANet under the same loss). On the benchmark column the paper column
  is the paper's CUB-200-2011 number (``df.attrs["caption"]`` says so).
- ``conclusions(S, records)``: one line per compared row (``base.table_conclusions``) and one per claim of the
  paper's abstract and conclusions (``fgic.evidence.claim``).

Profiles: smoke / default run the benchmark only, with the per-model ``S.model_kw`` (narrow widths, FCSA
restricted to the deep stages) and ``S.train``; the paper profile runs the real data sets at 224 px with the
paper's schedule (SGD, lr 0.1, x0.1 at epochs 200 and 400, 600 epochs, from scratch) on the whole official
training split (``S.val_fraction = 0``: no validation split, the last epoch is reported, as the paper), while
smoke / default hold out a seeded 10 % of each class as validation (our addition; reported, never used for
selection).

Patchify ablation (our addition; the paper discusses it but has no row for it): the paper says its
"Minus (FCSA+ACCB)" row cannot separate the attention from "the new downsampling layer". The grid model
``acanet18_convdown`` (``VARIANTS``) is the complete ACANet with torchvision's 1x1 stride-2 conv + BN
shortcuts (``down="conv"``) instead of the 2x2 stride-2 patchify ones, everything else equal, so Table 4
measures what patchify adds to the complete model.

Your own data: with ``S.data`` (``fgic.profiles.settings(..., dataset="folder", data_root=...)``) the
benchmark column trains on it instead (``fgic.profiles.data_source``); run names keep the column label.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pandas as pd
import yaml

from fgic import evidence, profiles
from fgic.experiments import base
from fgic.runs import RunSpec
from fgic.settings import ACANet

NOTEBOOK = "01_acanet"
BENCHMARK = base.BENCHMARK  # the column of the embedded benchmark (or your data in its place)
# registry name (model or VARIANTS name) -> row label in run names and tables; the paper's own rows are
# "ResNet 18", "VGG 16", "GoogleNet", "MobileNetV3", "DenseNet", "ConvNeXt", "ACANet (ours)" and Table 4's
# "Complete structure" (ACANet), "Minus ACCB", "Minus (FCSA+ACCB)"; "conv-down" is our extra Table 4 row
MODEL_LABELS = {
    "resnet18": "ResNet18",
    "vgg16": "VGG16",
    "googlenet": "GoogLeNet",
    "mobilenetv3_large": "MobileNetV3",
    "densenet121": "DenseNet",
    "convnext_tiny_tv": "ConvNeXt",
    "acanet18": "ACANet",
    "acanet18_no_accb": "ACANet-ACCB",
    "acanet18_plain": "ACANet-(FCSA+ACCB)",
    "acanet18_convdown": "ACANet conv-down",
}
# loss registry name -> label (the paper's "CE Loss", "Focal Loss", ..., "LMCL Loss")
LOSS_LABELS = {"ce": "CE", "focal": "Focal", "mc": "MC", "center": "Center", "asoftmax": "A-softmax",
               "coco": "COCO", "lgm": "LGM", "cosface": "LMCL"}
DATASETS = {"CUB-200-2011": "cub", "Stanford Cars": "cars", "Flower-102": "flowers102"}  # paper's name -> registry
PAPER_DATASET = "cub"  # the paper's column shown beside the benchmark (Table 4 exists for CUB only)
# grid model name -> (registered model, extra model_kw); its model_kw base is the registered model's entry
VARIANTS = {"acanet18_convdown": ("acanet18", {"down": "conv"})}


def label(model: str, loss: str) -> str:
    """Row label of ``model`` (registry or ``VARIANTS`` name) trained with ``loss``: ``"ACANet-ACCB/MC"``."""
    return f"{MODEL_LABELS.get(model, model)}/{LOSS_LABELS.get(loss, loss)}"


@functools.cache
def _numbers_file() -> dict:
    return yaml.safe_load(Path(__file__).with_name("acanet_numbers.yaml").read_text())


def paper_numbers() -> pd.DataFrame:
    """The paper's published top-1 test accuracies (%) of Tables 2-4 (``acanet_numbers.yaml``), long format
    ``table, dataset, row, metric, value``: ``dataset`` is a registry name, ``row`` a ``label``."""
    raw = _numbers_file()
    rows = [("table2", d, label(m, lo), "top1", v)
            for m, losses in raw["table2"].items() for lo, cell in losses.items() for d, v in cell.items()]
    rows += [("table3", d, label(m, "ce"), "top1", v) for m, cell in raw["table3"].items() for d, v in cell.items()]
    rows += [("table4", PAPER_DATASET, label(m, lo), "top1", v)
             for m, losses in raw["table4"].items() for lo, v in losses.items()]
    return base.paper_frame(rows)


def make_spec(S: ACANet, model: str, loss: str = "ce", dataset: str = BENCHMARK, seed: int | None = None) -> RunSpec:
    """One run: ``model`` (a registry or ``VARIANTS`` name) with ``loss`` on column ``dataset`` and training
    seed ``seed`` (None: ``S.seed``)."""
    seed = S.seed if seed is None else seed
    reg, extra = VARIANTS.get(model, (model, {}))
    kw = S.model_kw
    model_kw = {**(kw.get(model) or kw.get(reg) or {}), **extra}
    if dataset == BENCHMARK:  # the benchmark column: the embedded benchmark, or your data (S.data)
        data, data_kw, size = profiles.data_source(S)
    else:
        data, data_kw, size = dataset, dict(S.data_kw), S.image_size
    if S.val_fraction is not None:  # paper profile: 0, the whole official training split (no validation split)
        data_kw["val_fraction"] = float(S.val_fraction)
    return RunSpec(
        model=reg,
        dataset=data,
        loss=loss,
        model_kw=model_kw,
        loss_kw=dict(S.loss_kw.get(loss) or {}),
        data_kw=data_kw,
        transform=S.transform,
        transform_kw={"image_size": size},
        train={**S.train, "seed": seed},
    )


def _rows(S: ACANet, table: str) -> list[tuple[str, str]]:
    """``(model, loss)`` of every row of ``table`` ("table2" | "table3" | "table4") in this profile."""
    if table == "table2":
        return [(m, lo) for lo in S.table2.losses for m in S.table2.models]
    if table == "table3":
        return [(m, "ce") for m in S.table3.models]
    return [(m, lo) for lo in S.table4.losses for m in S.table4.models]


def _columns(S: ACANet, table: str) -> list[str]:
    return list(S.table4.datasets if table == "table4" else S.datasets)


def _seeds(S: ACANet, table: str) -> list[int]:
    return S.table4_seeds() if table == "table4" else list(S.seeds)


@base.with_extra_seeds
def grid(S: ACANet) -> dict[str, RunSpec]:
    """Every distinct run of the profile: ``{base.run_name(column, label(model, loss), seed): RunSpec}``."""
    out: dict[str, RunSpec] = {}
    for table in ("table2", "table3", "table4"):
        for d in _columns(S, table):
            for m, lo in _rows(S, table):
                for s in _seeds(S, table):
                    out.setdefault(base.run_name(d, label(m, lo), s), make_spec(S, m, lo, d, s))
    return out


# ------------------------------------------------------------------------------------------------ tables
def _paper_dataset(column: str) -> str:
    """The paper's data set whose numbers stand beside ``column`` (CUB for the benchmark)."""
    return column if column in DATASETS.values() else PAPER_DATASET


def _dataset_name(d: str) -> str:
    return next((k for k, v in DATASETS.items() if v == d), d)


def _compare(S: ACANet, records: dict, table: str, column: str, groups: dict[str, list[str]]) -> pd.DataFrame:
    """One frame of ``evidence.compare`` tables, one per ``{baseline row: [rows]}`` group, with a ``vs`` column."""
    paper = base.paper_column(paper_numbers(), "table2" if table == "table2-losses" else table,
                              _paper_dataset(column))
    seeds = _seeds(S, table)
    parts = []
    for baseline, rows in groups.items():
        cells = base.cells(records, column, rows, seeds=seeds)
        t = evidence.compare(cells, baseline, {r: paper.get(r) for r in rows})
        parts.append(t.assign(vs=baseline))
    return pd.concat(parts)


def _caption(S: ACANet, table: str, column: str, what: str) -> str:
    ref = _dataset_name(_paper_dataset(column))
    if column == BENCHMARK:
        ours = "your data" if S.data is not None else "the embedded benchmark"
        ref += " (a different, much larger task: compare differences between rows, not levels)"
    else:
        ours = _dataset_name(column)
    seeds = _seeds(S, table)
    return (f"**Table {table.removeprefix('table')}, {what}.** Top-1 test accuracy (%). *paper*: the paper's number "
            f"on {ref}; "
            f"*ours*: {ours}, mean +- std over {len(seeds)} seed(s) {seeds}. *diff*: the row minus its baseline "
            f"(*vs*), paired over seeds, with its 95 % CI and the paired t-test's p; *verdict*: against the paper's "
            f"own difference where it gives both numbers. Failed seeds are listed, never averaged.")


def tables(S: ACANet, records: dict) -> dict[str, pd.DataFrame]:
    """The comparison tables (``evidence.compare`` + a ``vs`` column naming each row's baseline), keyed
    ``"<table>/<column>"``; ``df.attrs["caption"]`` says what the paper column and ours are."""
    out = {}
    for column in _columns(S, "table2"):
        t2 = _rows(S, "table2")
        models = list(dict.fromkeys(m for m, _ in t2))
        losses = list(dict.fromkeys(lo for _, lo in t2))
        ref = "resnet18" if "resnet18" in models else models[0]
        out[f"table2/{column}"] = _compare(S, records, "table2", column, {
            label(ref, lo): [label(m, lo) for m in models] for lo in losses})
        out[f"table2/{column}"].attrs["caption"] = _caption(
            S, "table2", column, f"{MODEL_LABELS.get(ref, ref)} vs the other networks under the same loss")
        if len(losses) > 1:
            first = "ce" if "ce" in losses else losses[0]
            out[f"table2-losses/{column}"] = _compare(S, records, "table2-losses", column, {
                label(m, first): [label(m, lo) for lo in [first, *[x for x in losses if x != first]]]
                for m in models})
            out[f"table2-losses/{column}"].attrs["caption"] = _caption(
                S, "table2", column, f"every loss vs {LOSS_LABELS.get(first, first)} with the same network")
        t3 = [label(m, lo) for m, lo in _rows(S, "table3")]
        if t3:
            ref3 = label("resnet18", "ce") if label("resnet18", "ce") in t3 else t3[0]
            out[f"table3/{column}"] = _compare(S, records, "table3", column, {ref3: t3})
            out[f"table3/{column}"].attrs["caption"] = _caption(S, "table3", column, "backbones under CE")
    for column in _columns(S, "table4"):
        t4 = _rows(S, "table4")
        losses = list(dict.fromkeys(lo for _, lo in t4))
        ref = "acanet18" if any(m == "acanet18" for m, _ in t4) else t4[0][0]
        out[f"table4/{column}"] = _compare(S, records, "table4", column, {
            label(ref, lo): [label(m, x) for m, x in t4 if x == lo] for lo in losses})
        out[f"table4/{column}"].attrs["caption"] = _caption(
            S, "table4", column, "ablation: every row vs the complete ACANet under the same loss")
    return out


def view(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` for reading: paper | ours | vs | diff [95 % CI] | p | verdict | failed seeds."""
    def ci(r):
        if math.isnan(r["diff"]):
            return ""
        return f"{r['diff']:+.1f} [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]"

    out = pd.DataFrame({
        "paper": table["paper"].map(lambda v: "" if math.isnan(v) else f"{v:.2f}"),
        "ours": table["ours"],
        "vs": table["vs"].where(table.index != table["vs"], ""),
        "diff [95 % CI]": table.apply(ci, axis=1),
        "p": table["p"].map(lambda v: "" if math.isnan(v) else f"{v:.3f}"),
        "verdict": table["verdict"],
        "failed seeds": table["failed"],
    }, index=table.index)
    out.index.name = None
    return out


def plot_seed_curves(cells: dict, ax, metric: str = "test_acc", title: str | None = None):
    """Figs. 8-9 with seeds: per row of ``cells`` (``{row: {seed: record}}``) the mean over its healthy seeds of
    ``history[*][metric]`` per epoch, with a band of one standard deviation; failed seeds are left out and
    counted in the legend. Returns ``ax``."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    for i, (row, cell) in enumerate(cells.items()):
        ok, failed = evidence.healthy(cell)
        hists = [[h for h in cell[s]["history"] if h.get(metric) is not None] for s in ok]
        n = min((len(h) for h in hists), default=0)
        note = f" ({len(failed)} failed seed(s) left out)" if failed else ""
        if not n:
            ax.plot([], [], color=f"C{i}", label=f"{row}: no healthy seed{note}")
            continue
        curves = np.array([[h[metric] for h in hist[:n]] for hist in hists])  # (seeds, evaluations)
        epochs = [h["epoch"] for h in hists[0][:n]]
        mean, std = curves.mean(0), curves.std(0)
        ax.plot(epochs, mean, marker="o", ms=3, color=f"C{i}", label=f"{row}, {len(hists)} seed(s){note}")
        ax.fill_between(epochs, mean - std, mean + std, color=f"C{i}", alpha=0.2)
        if len(epochs) <= 12:  # a short CPU schedule: one tick per evaluated epoch
            ax.set_xticks(epochs)
    ax.set_xlabel("epoch")
    if len(ax.get_xticks()) > 12:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


# ------------------------------------------------------------------------------------------- conclusions
def _row_conclusions(name: str, table: pd.DataFrame, skip: set = frozenset()) -> list[base.Conclusion]:
    out = []
    for baseline, part in table.groupby("vs", sort=False):
        out += [c for c in base.table_conclusions(name, part.drop(columns="vs"), baseline)
                if (c.key.removeprefix(name + "/"), baseline) not in skip]
    return out


def _claim(key: str, text: str, table: pd.DataFrame | None = None, row: str | None = None,
           not_testable: str | None = None, expect: str | None = None) -> base.Conclusion:
    """A paper claim as a ``Conclusion``; ``expect`` ("B better" / "B worse"): the direction the claim predicts
    for a row the paper gives no number for (its verdict then reads reproduced / contradicted)."""
    if table is not None and row in table.index and expect:
        v = str(table.loc[row, "verdict"])
        table = table.copy()
        table.loc[row, "verdict"] = {expect: "reproduced"}.get(
            v, "contradicted" if v in ("B better", "B worse") else v)
    line = evidence.claim(text, table, row, not_testable=not_testable)
    verdict = "not testable" if ": not testable here" in line else line.rsplit(": ", 1)[-1]
    return base.Conclusion(key, line, verdict, *base.row_numbers(table, row))


@functools.cache
def _param_counts() -> dict[str, int]:
    """Parameters of the paper's full-size networks (200 classes), built on the meta device (no memory, no init)."""
    import torch

    from fgic.models import create_model, reparameterize

    def count(m):
        return sum(p.numel() for p in m.parameters())

    with torch.device("meta"):
        acanet = create_model("acanet18", 200).eval()
        out = {"unfused": count(acanet), "resnet18": count(create_model("resnet18", 200)),
               "no_accb": count(create_model("acanet18_no_accb", 200)), "fused": count(reparameterize(acanet))}
    return out


def _params_claims() -> list[base.Conclusion]:
    """Parameter counts of the paper's full-size networks: fused ACANet vs ResNet18, and fused ACANet vs
    "minus ACCB" (the same 3x3 convolutions; fusing leaves a bias where minus ACCB has a BN)."""
    n = _param_counts()
    fused, unfused, resnet, no_accb = n["fused"], n["unfused"], n["resnet18"], n["no_accb"]
    fewer = "reproduced" if fused < resnet else "contradicted"
    same = "reproduced" if fused <= no_accb else "contradicted"
    return [
        base.Conclusion("claim/fewer-parameters", (
            f"ACANet uses fewer parameters than ResNet18 (conclusions; full size, 200 classes, counted from the "
            f"models): {fewer} (fused ACANet {fused / 1e6:.2f} M, unfused {unfused / 1e6:.2f} M, ResNet18 "
            f"{resnet / 1e6:.2f} M)"), fewer),
        base.Conclusion("claim/accb-free-at-inference", (
            f"ACCB adds no parameters at inference once fused (section 3.1): {same} (fused ACANet {fused:,} "
            f"parameters, ACANet minus ACCB {no_accb:,}: the same 3x3 convolutions, a bias in place of a BN)"), same),
    ]


def conclusions(S: ACANet, records: dict) -> list[base.Conclusion]:
    """The "What this shows" lines: one per compared row of every table, then one per claim of the paper."""
    T = tables(S, records)
    out: list[base.Conclusion] = []
    for name, table in T.items():
        skip = set()
        if name.startswith("table3/") and f"table2/{name.split('/', 1)[1]}" in T:  # Table 3 repeats Table 2's CE
            t2 = T[f"table2/{name.split('/', 1)[1]}"]
            skip = set(zip(t2.index, t2["vs"]))
        out += _row_conclusions(name, table, skip)
    real = [d for d in S.datasets if d in DATASETS.values()]
    for column in _columns(S, "table2"):
        t2 = T[f"table2/{column}"]
        where = _dataset_name(column) if column != BENCHMARK else ("your data" if S.data else "the benchmark")
        for lo in ("ce", "focal", "mc"):  # the losses the paper reports ACANet with
            pa, pr = (base.paper_column(paper_numbers(), "table2", _paper_dataset(column)).get(label(m, lo))
                      for m in ("acanet18", "resnet18"))
            text = (f"ACANet is more accurate than ResNet18 with {LOSS_LABELS[lo]} loss on {where} (abstract: "
                    f"\"significantly improved\"; Table 2, {_dataset_name(_paper_dataset(column))}: {pa - pr:+.2f})")
            why = None if label("acanet18", lo) in t2.index and label("resnet18", lo) in t2.index else (
                f"{LOSS_LABELS[lo]} is not in this profile's Table 2 grid: OVERRIDES "
                f"\"table2.losses=[ce, focal, mc]\" adds it")
            out.append(_claim(f"claim/acanet-vs-resnet18/{column}/{LOSS_LABELS[lo]}", text, t2,
                              label("acanet18", lo), not_testable=why))
    if not real:
        out.append(_claim("claim/real-data-sets", (
            "ACANet improves on ResNet18 on CUB-200-2011, Stanford Cars and Flower-102 (Tables 2-3)"),
            not_testable="needs the three real data sets and the paper's 600-epoch schedule at 224 px; run "
                         "PROFILE=\"paper\" with the data under $FGIC_DATA on a GPU"))
    for column in _columns(S, "table4"):
        t4 = T[f"table4/{column}"]
        for lo in S.table4.losses:
            L = LOSS_LABELS.get(lo, lo)
            for model, text, expect in [
                ("acanet18_no_accb", f"ACCB improves accuracy ({L}; Table 4: minus ACCB vs complete)", None),
                ("acanet18_plain", f"FCSA and ACCB together improve accuracy ({L}; Table 4: minus (FCSA+ACCB) vs "
                                   "complete)", None),
                ("acanet18_convdown", f"The patchify downsampling layer improves accuracy ({L}; abstract; our row: "
                                      "1x1 conv shortcuts vs complete)", "B worse"),
            ]:
                row = label(model, lo)
                why = None if row in t4.index else f"row {row} is not in this profile's Table 4 grid"
                out.append(_claim(f"claim/{model}/{column}/{L}", text, t4, row, not_testable=why, expect=expect))
    out += _params_claims()
    out.append(_claim("claim/inference-time", (
        "ACANet does not significantly extend the inference time (introduction)"),
        not_testable="a controlled timing needs a dedicated machine and the full-size network; the "
                     "re-parameterisation section measures one CPU ratio at this profile's width, without repeats "
                     "across machines"))
    return out


# ------------------------------------------------------------------------------------- inference cost
def fcsa_window_flops(model, input_size=(3, 224, 224)) -> int:
    """FLOPs (2 x MACs) of the windowed attention products of every FCSA in ``model``, one image.

    The algorithm's count: per FCSA, 2 x (2 x C x n_off x Ho x Wo) for q.k and attn.v, n_off = the window
    positions that can fall inside the input map.
    """
    return _fcsa_attention_counts(model, input_size)[0]


def fcsa_attention_flops(model, input_size=(3, 224, 224)) -> int:
    """FLOPs of FCSA's windowed attention that ``fgic.cost.complexity`` does not already count.

    ``complexity`` counts what FlopCounterMode sees. FCSA computes its local attention as one masked
    scaled-dot-product attention over blocks of keys (``FCSA.attention``), which FlopCounterMode counts,
    masked halo keys included, so this is ``max(0, window FLOPs - counted attention FLOPs)``: 0 for the
    current FCSA. Kept so that ``complexity + this`` stays the total without double counting.
    """
    window, counted = _fcsa_attention_counts(model, input_size)
    return max(0, window - counted)


def _fcsa_attention_counts(model, input_size) -> tuple[int, int]:
    """(analytic window FLOPs, FLOPs FlopCounterMode counts in ``FCSA.attention``) over every FCSA."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fgic.nn.fcsa import FCSA

    window = counted = 0

    def hook(m, inputs, output):
        nonlocal window, counted
        x = inputs[0]  # (B, Cin, H, W)
        _, _, h, w = x.shape
        _, c, ho, wo = output.shape  # (B, C, Ho, Wo)
        r = m.kernel_att // 2
        n_off = (2 * min(r, h - 1) + 1) * (2 * min(r, w - 1) + 1)
        window += 2 * 2 * c * n_off * ho * wo
        q, k, v = (conv(x) for conv in (m.q, m.k, m.v))
        with FlopCounterMode(display=False) as fc:
            m.attention(q, k, v)
        counted += int(fc.get_total_flops())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, FCSA)]
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=p.device, dtype=p.dtype))
    finally:
        model.train(was_training)
        for hnd in handles:
            hnd.remove()
    return window, counted
