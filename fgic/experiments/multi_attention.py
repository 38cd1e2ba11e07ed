"""Experiment module of notebook 02: "Multi-Attention Mechanism Fusion for Fine-Grained Image Classification"
(Du, Ma), Table 1: ResNet50, FCN-, CA-, SA- and CSCA-ResNet50 on CUB-200-2011, Stanford Dogs, Stanford Cars.

The surface every experiment module has (``fgic.experiments.base``):

- ``grid(S)``: one ``RunSpec`` per (data set, Table 1 row, seed), keyed ``base.run_name(data set, row, seed)``,
  e.g. ``"benchmark:CSCA-ResNet50:s1"``, from the typed settings ``S`` (``fgic.settings.MultiAttention``):
  data sets ``S.datasets`` (``"benchmark"`` or the registry names of ``DATASETS``), rows ``S.models`` (labels of
  ``MODELS``; the baseline ResNet50 always), seeds ``S.seeds`` for every row.

  - smoke / default: the embedded benchmark only (``dataset="synthetic"`` with ``S.benchmark``), small trunks
    (``S.model_kw``: ``layers`` / ``width``), trained from scratch with ``S.train``; a seeded 10 % of each
    class is held out as validation (our addition, never used for selection).
  - paper: the three real data sets of Table 1 plus the benchmark column, the full ResNet50 shape, ImageNet
    weights (``pretrained=True``: fails loudly when the weights are not cached), the ``multi_attention``
    transform preset at 224 px and ``S.train``, trained on the whole official training split
    (``S.val_fraction = 0``; the last epoch is reported: the paper states no model selection).

- ``paper_numbers()``: Table 1 from ``multi_attention_numbers.yaml`` (long format, the paper's labels).
- ``tables(S, records)``: ``"table1/<data set>"``, one ``fgic.evidence.compare`` table per data set run, the
  rows against ResNet50 paired over seeds; the paper column is the CUB-200 one on the benchmark (Table 1's
  first row) and the matching column on a real data set. ``"table1-csca/<data set>"``: the same runs with
  CSCA-ResNet50 as the reference (the paper's claim that CSCA improves most).
- ``conclusions(S, records)``: a sentence per compared row of every table, then one line per claim of the
  paper's abstract and conclusion.

The "FCN-ResNet50" row is run as ``resnet50_cam_head`` (``fgic.nn.cam_attention``): a mean-pooled FCN head
equals GAP + FC, so the paper's "CAM attention" is read as CAM-weighted pooling (the top-5 classes' CAMs,
normalised, reweight the last feature map before pooling); the plain ``resnet50_fcn_head`` stays registered.

The paper gives no optimiser, learning rate, schedule, epochs, batch size or input size; the choices
(SGD, cosine, 224 px, new classifier at 10x the backbone rate) are in ``params/02_multi_attention.yaml``
and the notebook.

Your own data: with ``S.data`` (``fgic.profiles.settings(..., dataset="folder", data_root=...)``) the
benchmark column trains on it instead (``fgic.profiles.data_source``); run names keep ``benchmark``.

Heatmap helpers for the notebook: ``class_cam`` (the network's own CAM) and ``stage_attention_map`` (an SA /
CSCA block's own spatial map), both upsampled and min-max normalised by ``to_image``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from fgic import evidence, profiles
from fgic.cam import normalize_maps
from fgic.experiments import base
from fgic.experiments.base import BENCHMARK, Conclusion
from fgic.models.multi_attention import attention_maps
from fgic.runs import RunSpec
from fgic.settings import MultiAttention

NOTEBOOK = "02_multi_attention"
TABLE = "table1"
# Table 1 column label -> registered model (resnet50 = the ResNet50 baseline with the same options;
# FCN-ResNet50 = our CAM-attention reading, since a plain FCN head is the baseline's GAP + FC reordered)
MODELS = {
    "ResNet50": "resnet50",
    "FCN-ResNet50": "resnet50_cam_head",
    "CA-ResNet50": "resnet50_ca_units",
    "SA-ResNet50": "resnet50_sa_units",
    "CSCA-ResNet50": "resnet50_csca_units",
}
BASELINE = "ResNet50"
BEST = "CSCA-ResNet50"  # the paper's best network
# registered data set -> its Table 1 row label; the benchmark is its own column, never one of the paper's
DATASETS = {"cub": "CUB-200", "dogs": "Stanford-dogs", "cars": "Stanford-cars"}
PAPER_ON_BENCHMARK = "cub"  # the paper column set beside the benchmark: Table 1's first data set
NEEDS_REAL_DATA = "needs the {} images and ImageNet weights: run the paper profile on a GPU"


def _numbers() -> dict:
    return yaml.safe_load(Path(__file__).with_name("multi_attention_numbers.yaml").read_text())


def paper_numbers() -> pd.DataFrame:
    """Table 1 of the paper: ``table, dataset, row, metric, value`` (top-1 %, the paper's labels)."""
    acc = _numbers()["table1"]["accuracy"]  # model -> data set -> %
    return base.paper_frame((TABLE, d, m, "top1", v) for m, col in acc.items() for d, v in col.items())


def rows(S: MultiAttention) -> list[str]:
    """Table 1 rows of this profile: ``S.models`` (None: all), the baseline first and always."""
    chosen = S.models or list(MODELS)
    unknown = [m for m in chosen if m not in MODELS]
    if unknown:
        raise KeyError(f"models {unknown} are not Table 1 rows ({list(MODELS)})")
    return [BASELINE, *(m for m in MODELS if m in chosen and m != BASELINE)]


def spec(S: MultiAttention, dataset: str, row: str, seed: int) -> RunSpec:
    """The run of Table 1 row ``row`` on ``dataset`` (``"benchmark"`` or a key of ``DATASETS``) with training seed
    ``seed``."""
    if dataset == BENCHMARK:  # the embedded benchmark, or your data in its place
        data, data_kw, size = profiles.data_source(S)
        if S.data is None:
            size = S.image_size or size  # paper profile: the real data sets' input size on the benchmark too
    elif dataset in DATASETS:
        data, data_kw, size = dataset, dict(S.data_kw), S.image_size
    else:
        raise KeyError(f"data set {dataset!r} is not 'benchmark' or one of Table 1's {list(DATASETS)}")
    if S.val_fraction is not None:  # paper profile: 0, the whole official training split (no validation split)
        data_kw["val_fraction"] = float(S.val_fraction)
    return RunSpec(
        model=MODELS[row],
        dataset=data,
        model_kw=dict(S.model_kw),
        data_kw=data_kw,
        transform=S.transform,
        transform_kw={"image_size": size},
        train={**S.train, "seed": int(seed)},
        pretrained=S.pretrained,
    )


@base.with_extra_seeds
def grid(S: MultiAttention) -> dict[str, RunSpec]:
    """Every run of the profile: ``{base.run_name(data set, row, seed): RunSpec}`` over ``S.datasets`` x
    ``rows(S)`` x ``S.seeds``."""
    return {base.run_name(d, m, s): spec(S, d, m, s) for d in S.datasets for m in rows(S) for s in S.seeds}


def paper_column(dataset: str) -> tuple[str, dict[str, float]]:
    """(paper label, ``{row: the paper's top-1}``) set beside ``dataset``: CUB-200 beside the benchmark."""
    label = DATASETS[PAPER_ON_BENCHMARK if dataset == BENCHMARK else dataset]
    return label, base.paper_column(paper_numbers(), TABLE, label)


def tables(S: MultiAttention, records) -> dict[str, pd.DataFrame]:
    """``{"table1/<data set>": compare vs ResNet50, "table1-csca/<data set>": compare vs CSCA-ResNet50}`` for every
    data set of ``S.datasets`` (``fgic.evidence.compare``: mean +- std over ``S.seeds``, paired t over seeds)."""
    out = {}
    for d in S.datasets:
        cells = base.cells(records, d, rows(S), S.seeds)
        paper = paper_column(d)[1]
        out[f"{TABLE}/{d}"] = evidence.compare(cells, BASELINE, paper)
        if BEST in cells:
            others = {m: c for m, c in cells.items() if m not in (BASELINE, BEST)}
            if others:
                out[f"{TABLE}-csca/{d}"] = evidence.compare({BEST: cells[BEST], **others}, BEST, paper)
    return out


def _claim(key: str, text: str, table: pd.DataFrame | None, row: str, not_testable: str | None = None) -> Conclusion:
    line = evidence.claim(text, table, row, not_testable=not_testable)
    verdict = "not testable" if ": not testable here" in line else str(table.loc[row, "verdict"])
    return Conclusion(key, line, verdict, *base.row_numbers(table, row))


def _best_claim(key: str, text: str, table: pd.DataFrame | None, why: str) -> Conclusion:
    """CSCA improves most: every other attention row significantly below CSCA (the paper's sign) = reproduced."""
    if table is None:
        return Conclusion(key, f"{text}: not testable here ({why})", "not testable")
    verdicts = [str(v) for r, v in table["verdict"].items() if r != BEST]
    short = [v for v in verdicts if v.startswith("n < 2")]
    if short:
        return Conclusion(key, f"{text}: not testable here ({short[0]})", "not testable")
    if "contradicted" in verdicts:
        word = "contradicted"
    elif all(v == "reproduced" for v in verdicts):
        word = "reproduced"
    else:
        word = "no significant difference"
    return Conclusion(key, f"{text}: {word} (" + ", ".join(f"{r}: {v}" for r, v in table["verdict"].items()
                                                              if r != BEST) + ")", word)


def conclusions(S: MultiAttention, records) -> list[Conclusion]:
    """Computed "What this shows" lines: every table's rows against its reference, then the paper's claims.

    Keys: ``table1/<data set>/<row>``, ``table1-csca/<data set>/<row>`` and ``claim/...``."""
    t = tables(S, records)
    out = []
    for name, table in t.items():
        out += base.table_conclusions(name, table, BEST if name.startswith(f"{TABLE}-csca/") else BASELINE)
    paper = paper_numbers()
    cub = base.paper_column(paper, TABLE, DATASETS[PAPER_ON_BENCHMARK])
    bench = t.get(f"{TABLE}/{BENCHMARK}")
    where = "on the benchmark" if S.data is None else "on your data"
    no_bench = None if bench is not None else "the benchmark column is not in this profile's data sets"
    # abstract: each of the four attention methods improves ResNet50
    for m in (r for r in MODELS if r != BASELINE):
        text = (f"{m} is more accurate than ResNet50 (abstract; paper on CUB-200 {cub[m] - cub[BASELINE]:+.1f} "
                f"points), tested {where}")
        out.append(_claim(f"claim/{BENCHMARK}/{m}-beats-{BASELINE}", text, bench, m, no_bench))
    # abstract: CSCA is the most significant improvement of the four
    out.append(_best_claim(f"claim/{BENCHMARK}/{BEST}-best", f"{BEST} improves most of the four attention networks "
                           f"(abstract; on every data set of Table 1), tested {where}",
                           t.get(f"{TABLE}-csca/{BENCHMARK}"), no_bench or "CSCA or the other rows not run"))
    # abstract: the attention methods focus on local features
    out.append(_claim("claim/attention-focuses-on-local-features",
                      "The four attention methods focus on local features (abstract)", None, "",
                      not_testable="a localisation claim, not an accuracy one: the localisation section scores it "
                                   "on the benchmark's part boxes, for the first seed only"))
    # conclusion: CSCA gains 8.3, 9.6 and 4.4 points on CUB, Dogs and Cars
    for d, label in DATASETS.items():
        gain = _numbers()["conclusion_gains"][label]
        text = f"CSCA-ResNet50 beats ResNet50 by {gain} points on {label} (conclusion)"
        table = t.get(f"{TABLE}/{d}")
        out.append(_claim(f"claim/{d}/{BEST}-gain", text, table, BEST,
                          None if table is not None else NEEDS_REAL_DATA.format(label)))
    return out


def view(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """A ``compare`` table as shown: paper | ours mean +- std (n) | diff vs ``reference`` [95 % CI] | p | verdict |
    failed seeds."""
    def diff(r) -> str:
        if pd.isna(r["diff"]):
            return ""
        return f"{r['diff']:+.1f} [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]"

    return pd.DataFrame({
        "paper": table["paper"].map(lambda v: "" if pd.isna(v) else f"{v:.1f}"),
        "ours (mean +- std, n seeds)": table["ours"],
        f"diff vs {reference} [95 % CI]": table.apply(diff, axis=1),
        "p": table["p"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}"),
        "verdict": table["verdict"],
        "failed seeds": table["failed"],
    }, index=table.index)


def to_image(maps: torch.Tensor, size) -> torch.Tensor:
    """Min-max normalise (B, h, w) maps per image, then upsample them bilinearly to ``size``: (B, H, W) in
    [0, 1]. Normalising at the map's own resolution keeps a constant map (a 1x1 map at 32 px) at 0 instead
    of stretching rounding noise to [0, 1]; an extreme in an interior cell then peaks slightly below 1."""
    return F.interpolate(normalize_maps(maps.float())[:, None], size=tuple(size), mode="bilinear",
                         align_corners=False)[:, 0]


@torch.no_grad()
def stage_attention_map(model: nn.Module, images: torch.Tensor, stage: int) -> torch.Tensor:
    """The attention module's own spatial map (``last_map``) of the LAST block of ``layer<stage>``, for
    ``images`` (B, 3, H, W): upsampled bilinearly to the image and min-max normalised, (B, H, W) in [0, 1].

    Only SA and CSCA networks have a spatial map (CA's ``last_map`` is its channel weights (B, C, 1, 1));
    raises ``ValueError`` otherwise. The map is class-agnostic: it does not depend on a target class.
    """
    model(images)  # fills every block's last_map
    prefix = f"features.layer{stage}."
    maps = {k: v for k, v in attention_maps(model).items() if k.startswith(prefix) and v.shape[1] == 1}
    if not maps:
        raise ValueError(f"{type(model).__name__} has no spatial attention map in layer{stage}")
    last = maps[max(maps, key=lambda k: int(k.removeprefix(prefix).split(".")[0]))]  # (B, 1, h, w)
    return to_image(last[:, 0], images.shape[-2:])  # (B, H, W)


@torch.no_grad()
def class_cam(model: nn.Module, images: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
    """CAM of ``classes`` (default: the prediction) from the network's own ``model.cam(images)`` (B, K, h, w)
    (sum_k w_{c,k} A^k + b_c: the per-pixel class scores of the FCN / CAM-attention / linear heads), upsampled
    bilinearly to the image and min-max normalised: (B, H, W) in [0, 1].

    (``fgic.cam.cam`` calls ``model.cam`` with the feature map, while seed 001's networks take the images.)
    """
    maps = model.cam(images)  # (B, K, h, w)
    if classes is None:
        classes = model(images).argmax(1)  # the prediction (CAM attention: not the CAM's plain mean)
    maps = maps[torch.arange(len(maps), device=maps.device), classes]  # (B, h, w)
    return to_image(maps, images.shape[-2:])  # (B, H, W)
