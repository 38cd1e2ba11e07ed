"""Experiment module of notebook 03: "Mixed Attention Mechanism for Small-Sample Fine-grained Image
Classification" (Li, Wu, Chang, Huang, Ma, Cao), Tables I-II, the ablation of section III-D, Figs. 2-3.

The one surface of ``fgic.experiments.base``: ``grid(S)`` builds one ``RunSpec`` per (data set, backbone,
variant, seed) from the typed settings ``S`` (``fgic.settings.MixedAttention``), each keyed by
``base.run_name(data set, "<backbone>/<variant>", seed)``, e.g. ``"benchmark:VGG16/MA-Ours:s0"``;
``paper_numbers()`` reads ``mixed_attention_numbers.yaml``; ``tables(S, records)`` and
``conclusions(S, records)`` compare the variants over seeds (``fgic.evidence``).

Variants (Table II's rows): Baseline (no attention), CA (SE channel attention), SA-Ours, MA-Ours; backbones
VGG16-BN and ResNet-50 (``fgic.models.mixed_attention``). The paper's recipe (section III-B) goes through
``train["param_groups"]``: attention 0.1, the rest (backbone and the new FC-BN-ELU head) 0.01, cosine decay,
batch 32, 300 epochs, 224 px, cross-entropy.

Tables (one ``evidence.compare`` table per backbone and data set column):

- ``table2/<data set>/<backbone>``: Table II, every variant against Baseline;
- ``ablation/<data set>/<backbone>``: section III-D, MA-Ours against its two single-branch ablations (CA = MA
  without the spatial branch, SA-Ours = MA without the channel branch).

The paper column is the paper's number on that data set; on the benchmark (or your data) it is Stanford
Cars-196's (``PAPER_DATASET``: the paper's first column, and the data set of Figs. 2-3). Table I's rows of
ours are Table II's FGVC-Aircraft cells; its other rows are other papers' methods, not implemented here.

"Small-sample" in the paper is not a sampling protocol: it names the two data sets themselves (Stanford
Cars, about 41 training images per class; FGVC-Aircraft, about 67), used with their official splits
(8,144 / 8,041 and 6,667 / 3,333). So the paper profile trains on the full official training sets
(``S.val_fraction = 0``: no validation split; the last epoch is reported, the paper states no model
selection). smoke / default hold out a seeded 10 % of each class's training images as validation (our
addition; reported, never used for selection). On the embedded benchmark a small-sample setting is a
reduced ``images_per_class`` (``S.small_sample``, ``S.small_benchmark()``), train + validation.

``feature_energy(model, images)`` is Fig. 3's heatmap: the energy of the last feature map.

Your own data: with ``S.data`` (``fgic.profiles.settings(..., dataset="folder", data_root=...)``) the
benchmark column trains on it instead, without the small-sample knobs (``fgic.profiles.data_source``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
import yaml

from fgic import evidence, profiles
from fgic.experiments import base
from fgic.experiments.base import Conclusion
from fgic.experiments.multi_attention import to_image
from fgic.runs import RunSpec
from fgic.settings import MixedAttention

NOTEBOOK = "03_mixed_attention"
BACKBONES = {"VGG16": "vgg16_bn", "ResNet-50": "resnet50"}  # the paper's column label -> model prefix
VARIANTS = {"Baseline": "top", "CA": "ca_top", "SA-Ours": "sa_top", "MA-Ours": "ma_top"}  # Table II row -> suffix
DATASETS = {"Stanford Cars-196": "cars", "FGVC-Aircraft": "aircraft"}  # Table II column -> registered name
BENCHMARK = base.BENCHMARK
PAPER_DATASET = "Stanford Cars-196"  # the paper's column shown beside the benchmark (or your data)
ABLATION = {"CA": "MA-Ours without its spatial branch", "SA-Ours": "MA-Ours without its channel branch"}


def _numbers() -> dict:
    return yaml.safe_load((Path(__file__).with_name("mixed_attention_numbers.yaml")).read_text())


def paper_numbers() -> pd.DataFrame:
    """The paper's numbers, long format (``table, dataset, row, metric, value``; %, points for ``gain``):
    ``table2`` (row ``"<backbone>/<variant>"``), ``table1`` (FGVC-Aircraft, ``"<base model>/<method>"``) and
    ``ablation`` (section III-D's text, VGG16: ``"VGG16/MA-Ours"`` top1 and ``"VGG16/MA-Ours - <variant>"``
    gain)."""
    n = _numbers()
    rows = [("table2", d, f"{b}/{v}", "top1", acc)
            for d, by_b in n["table2"]["accuracy"].items() for b, by_v in by_b.items() for v, acc in by_v.items()]
    rows += [("table1", "FGVC-Aircraft", f"{r['base_model']}/{r['method']}", "top1", r["accuracy"])
             for r in n["table1"]["rows"]]
    for d, a in n["ablation"].items():
        rows.append(("ablation", d, "VGG16/MA-Ours", "top1", a["MA-Ours"]))
        rows += [("ablation", d, f"VGG16/MA-Ours - {k.removeprefix('over_')}", "gain", v)
                 for k, v in a.items() if k.startswith("over_")]
    return base.paper_frame(rows)


def model_name(backbone: str, variant: str) -> str:
    """Registered model of a Table II cell, e.g. ``("VGG16", "MA-Ours")`` -> ``"vgg16_bn_ma_top"``."""
    return f"{BACKBONES[backbone]}_{VARIANTS[variant]}"


def row_name(backbone: str, variant: str) -> str:
    """The row of a run name: ``"VGG16/MA-Ours"``."""
    return f"{backbone}/{variant}"


def column(dataset: str) -> str:
    """The data set of a run name: ``"benchmark"`` (the benchmark or your data) or the registry name of a
    Table II column (``"Stanford Cars-196"`` -> ``"cars"``)."""
    return DATASETS.get(dataset, dataset)


def param_groups(S: MixedAttention) -> dict[str, float]:
    """Per-module learning rates: ``{"attention.": S.attention_lr, "": S.backbone_lr}`` (the paper:
    0.1 and 0.01). Every attention parameter of these networks lives under ``attention.``
    (``fgic.models.mixed_attention.paper_param_groups`` gives the same mapping from a built model)."""
    return {"attention.": float(S.attention_lr), "": float(S.backbone_lr)}


def _spec(S: MixedAttention, dataset: str, backbone: str, variant: str, seed: int) -> RunSpec:
    if dataset == BENCHMARK and S.data:  # the benchmark column on your data (no small-sample knobs)
        data, data_kw, size = profiles.data_source(S)
    elif dataset == BENCHMARK:
        data, data_kw = "synthetic", S.small_benchmark().kw()
        size = S.image_size or S.benchmark.image_size
    else:
        data, data_kw, size = DATASETS[dataset], dict(S.data_kw), S.image_size
    if S.val_fraction is not None:  # paper profile: 0, the whole official training split (no validation split)
        data_kw["val_fraction"] = float(S.val_fraction)
    train = {**S.train, "lr": float(S.backbone_lr), "param_groups": param_groups(S), "seed": seed}
    return RunSpec(
        model=model_name(backbone, variant),
        dataset=data,
        model_kw=dict(S.model_kw.get(BACKBONES[backbone]) or {}),
        data_kw=data_kw,
        transform=S.transform,
        transform_kw={"image_size": size},
        train=train,
        pretrained=S.pretrained,
    )


def _backbones(S: MixedAttention) -> list[str]:
    return list(S.backbones or BACKBONES)


def _variants(S: MixedAttention) -> list[str]:
    return [v for v in VARIANTS if v in (S.variants or VARIANTS)]


@base.with_extra_seeds
def grid(S: MixedAttention) -> dict[str, RunSpec]:
    """Every run of the profile, ``{base.run_name(column(d), "<backbone>/<variant>", seed): RunSpec}``, over
    ``S.datasets`` (Table II column labels or ``"benchmark"``), ``S.backbones``, ``S.variants`` (all by
    default) and ``S.seeds``."""
    return {base.run_name(column(d), row_name(b, v), s): _spec(S, d, b, v, s)
            for d in S.datasets for b in _backbones(S) for v in _variants(S) for s in S.seeds}


def cells(S: MixedAttention, records: dict, dataset: str, backbone: str,
          variants: list[str] | None = None) -> dict[str, dict[int, object]]:
    """``{variant: {seed: record or None}}`` of one backbone on one data set column (a ``S.datasets`` label),
    for ``evidence.compare`` and ``evidence.seed_values``."""
    variants = variants or _variants(S)
    found = base.cells(records, column(dataset), [row_name(backbone, v) for v in variants], S.seeds)
    return {v: found[row_name(backbone, v)] for v in variants}


def paper_dataset(dataset: str) -> str:
    """The paper's data set whose numbers stand beside a column: itself, or Cars for the benchmark."""
    return dataset if dataset in DATASETS else PAPER_DATASET


def _paper(numbers: pd.DataFrame, dataset: str, backbone: str) -> dict[str, float]:
    col = base.paper_column(numbers, "table2", paper_dataset(dataset))
    return {v: col[row_name(backbone, v)] for v in VARIANTS}


def tables(S: MixedAttention, records: dict) -> dict[str, pd.DataFrame]:
    """``{"table2/<column>/<backbone>": ..., "ablation/<column>/<backbone>": ...}``: ``evidence.compare``
    tables (paired t over ``S.seeds``) with the paper's number on ``paper_dataset(d)`` beside ours.
    Table II's baseline is Baseline; the ablation's is MA-Ours (its rows CA and SA-Ours)."""
    numbers, out = paper_numbers(), {}
    variants = _variants(S)
    for d in S.datasets:
        for b in _backbones(S):
            paper = _paper(numbers, d, b)
            if "Baseline" in variants:
                out[f"table2/{column(d)}/{b}"] = evidence.compare(cells(S, records, d, b), "Baseline", paper)
            ablated = [v for v in ABLATION if v in variants]
            if "MA-Ours" in variants and ablated:
                out[f"ablation/{column(d)}/{b}"] = evidence.compare(
                    cells(S, records, d, b, ["MA-Ours", *ablated]), "MA-Ours", paper)
    return out


def _claim(key: str, text: str, table: pd.DataFrame | None = None, row: str | None = None,
           not_testable: str | None = None) -> Conclusion:
    line = evidence.claim(text, table, row, not_testable=not_testable)
    if not_testable or table is None or row not in table.index:
        verdict = "not testable"
    else:
        verdict = str(table.loc[row, "verdict"])
    return Conclusion(key, line, verdict, *base.row_numbers(table, row))


def _points(paper: dict, row: str, baseline: str) -> str:
    return f"{paper[row] - paper[baseline]:+.2f} points"


def conclusions(S: MixedAttention, records: dict) -> list[Conclusion]:
    """Every table's row sentences (``base.table_conclusions``), then one line per claim of the paper's
    abstract and conclusion: SA-Ours and MA-Ours beat the base model, MA-Ours beats each single branch (the
    ablation), both beat other methods on FGVC-Aircraft (Table I), MA-Ours' heatmaps capture more
    discriminative regions (Fig. 3)."""
    tabs, numbers = tables(S, records), paper_numbers()
    out = []
    for d in S.datasets:
        for b in _backbones(S):
            for kind, what, ref in (("table2", "Table II", "Baseline"), ("ablation", "Ablation", "MA-Ours")):
                name = f"{kind}/{column(d)}/{b}"
                if name in tabs:
                    out += [replace(c, text=f"{what}, {b} on {column(d)}: {c.text}")
                            for c in base.table_conclusions(name, tabs[name], ref)]
    for d in S.datasets:
        c, pd_name = column(d), paper_dataset(d)
        for b in _backbones(S):
            paper = _paper(numbers, d, b)
            t2, abl = tabs.get(f"table2/{c}/{b}"), tabs.get(f"ablation/{c}/{b}")
            for v, what in (("SA-Ours", "the proposed spatial attention"), ("MA-Ours", "the proposed mixed attention")):
                out.append(_claim(f"claim/{c}/{b}/{v}-beats-Baseline",
                                  f"{v} ({what}) beats the base model, {b} on {c} (paper, {pd_name}: "
                                  f"{_points(paper, v, 'Baseline')})", t2, v))
            for v, what in ABLATION.items():
                out.append(_claim(f"claim/{c}/{b}/MA-Ours-beats-{v}",
                                  f"MA-Ours beats {v} ({what}), {b} on {c} (paper, {pd_name}: "
                                  f"{_points(paper, 'MA-Ours', v)})", abl, v))
    out.append(_claim(
        "claim/table1/other-methods",
        "SA-Ours and MA-Ours outperform the other referred methods on FGVC-Aircraft (Table I: 88.5 and 88.6 "
        "with VGG16 against at most 88.4)",
        not_testable="the other methods are not implemented here, and the numbers need FGVC-Aircraft and "
                     "ImageNet weights; the paper profile on a GPU trains SA-Ours and MA-Ours there"))
    out.append(_claim(
        "claim/fig3/discriminative-regions",
        "MA-Ours' feature energy captures more discriminative regions than the other variants (Fig. 3)",
        not_testable="Fig. 3 is qualitative; the localisation scores of this notebook are one seed's runs "
                     "on the benchmark's part boxes, with no test over seeds"))
    return out


@torch.no_grad()
def feature_energy(model: nn.Module, images: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Fig. 3's heatmap: energy of the last feature map (after the attention), sum_c A_c(h, w)^2, upsampled
    bilinearly to the image (or ``size``), min-max normalised per image: (B, H, W) in [0, 1].

    The paper draws "the energy distribution of feature maps" of the highest-level feature map without a
    formula; we take the squared activations summed over channels (MA's merge conv can output negative
    values, so the plain channel sum could cancel)."""
    fmap = model.forward_features(images)  # (B, C, h, w)
    energy = fmap.float().pow(2).sum(1)  # (B, h, w)
    return to_image(energy, size or images.shape[-2:])  # (B, H, W)


@torch.no_grad()
def spatial_attention_map(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The attention module's own spatial map V (``model.attention.last_map``, SA-Ours and MA-Ours: the SA
    branch's softmax-weighted channel sum, eq. (3)), upsampled bilinearly to the image and min-max
    normalised: (B, H, W) in [0, 1]. Raises ``ValueError`` for Baseline and CA (no spatial map)."""
    model(images)  # fills last_map
    v = getattr(model.attention, "last_map", None)
    if v is None or v.shape[1] != 1:
        raise ValueError(f"{type(model.attention).__name__} has no spatial attention map")
    return to_image(v[:, 0], images.shape[-2:])  # (B, H, W)
