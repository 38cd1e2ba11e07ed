"""Experiment grid of notebook 05: "Fine-Grained Image Classification with ConvNeXt and SCR-Attention"
(Thushara, Ismithdeen, Abi), Table 1: a ConvNeXt-V2 baseline, then augmentation, L2-SP, dropout and the
SCRA block added one after another, on CUB-200-2011, CUB + FGVC-Aircraft and FoodX-251.

``specs(S)`` builds one ``RunSpec`` per (data set, Table 1 row, seed) from the typed settings ``S``
(``fgic.settings.SCRA``) of ``fgic.profiles.settings("05_convnextv2_scra", profile)``:

- smoke / default: the embedded benchmark only (``dataset="synthetic"`` with ``S.benchmark``), a narrow
  and shallow ConvNeXt-V2 atto (``S.model_kw``) trained from scratch with ``S.train``.
- paper: the three real data sets (only the cells the paper prints; its "-" cells are skipped) plus the
  benchmark column, ConvNeXt-V2 Large with ImageNet-22k weights (``pretrained=True``: fails loudly when the
  weights are not cached), 224 px, Adam lr 1e-4, weight decay 1e-5, lr x0.1 every 5 epochs, 30 epochs,
  batch 128.

What each row switches on (``ROWS``): augmentation = the ``scra`` transform preset (rotation up to 15
degrees and horizontal flip, each p = 0.25, colour jitter); without it, ``S.baseline_transform`` (resize
and normalise only, the paper's baseline); L2-SP = ``RunSpec.regularizer`` ``{"name": "l2sp", "lam": ...}``;
dropout = ``drop_rate`` before the classifier (p = 0.45); SCRA = the ``_scra`` model.

Which images: ``build_dataset(..., split="train", **data_kw)`` is the training split. The paper profile sets
``data_kw: {val_fraction: 0}`` for the real data sets: the whole official training split, no validation split,
test top-1 after the last epoch, as the paper (which names no validation set). The benchmark keeps its seeded
10 % validation split (our addition: reported, never used to pick a model). Heatmap scores use a
class-balanced, seeded test subset (``fgic.data.subsets.balanced_sample``).

Cost: ``measure(spec, num_classes, image_size, device)`` builds a spec's model (on the ``meta`` device for
ConvNeXt-V2 Large: no memory, no weights) and returns ``fgic.cost.complexity``. Published numbers:
``load_numbers()`` reads ``scra_numbers.yaml``.

Your own data: with ``S.data`` (``fgic.profiles.settings(..., dataset="folder", data_root=...)``) the
benchmark column trains on it instead (``fgic.profiles.data_source``); run names keep the column label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from fgic import profiles
from fgic.runs import RunSpec
from fgic.settings import SCRA

if TYPE_CHECKING:
    import pandas as pd

NOTEBOOK = "05_convnextv2_scra"
BENCHMARK = "benchmark"  # the embedded benchmark's column: its own, never one of the paper's data sets
DATASETS = {"cub": "CUB Birds", "cub_aircraft": "CUB + FGVC Aircraft", "foodx251": "FoodX-251"}


@dataclass(frozen=True)
class Row:
    label: str  # as printed in Table 1
    short: str  # for figure labels
    aug: bool  # the scra transform preset
    l2sp: bool  # L2-SP regulariser
    dropout: bool  # dropout before the classifier
    scra: bool  # SCRA block after stage 1


ROWS = {
    "baseline": Row("Baseline", "base", False, False, False, False),
    "aug": Row("Baseline + Augmentation", "+aug", True, False, False, False),
    "aug_l2sp": Row("Baseline + Augmentation + L2SP", "+aug+L2SP", True, True, False, False),
    "aug_l2sp_drop": Row("Baseline + Augmentation + L2SP + Dropout", "+aug+L2SP+drop", True, True, True, False),
    "aug_l2sp_drop_scra": Row(
        "Baseline + Augmentation + L2SP + Dropout + SCRA", "+aug+L2SP+drop+SCRA", True, True, True, True
    ),
    "aug_drop_scra": Row("Baseline + Augmentation + Dropout + SCRA", "+aug+drop+SCRA", True, False, True, True),
}


def load_numbers() -> dict:
    """The paper's published numbers (``scra_numbers.yaml``)."""
    return yaml.safe_load(Path(__file__).with_name("scra_numbers.yaml").read_text())


def table1() -> pd.DataFrame:
    """Table 1 as printed: one row per ``ROWS`` key; top-1 (%) per data set, GFLOPs, parameters (M)."""
    import pandas as pd

    t = load_numbers()["table1"]
    out = {}
    for key, row in t["rows"].items():
        out[key] = {**{d: row["top1"][d] for d in DATASETS}, "gflops": row["gflops"], "params_m": row["params_m"]}
    return pd.DataFrame(out).T.loc[list(ROWS)]


def run_name(dataset: str, row: str, seed: int) -> str:
    """Key of one run in ``specs``: ``"<data set>:<row>:s<seed>"``, e.g. ``"benchmark:aug_drop_scra:s0"``."""
    return f"{dataset}:{row}:s{seed}"


def printed(dataset: str, row: str) -> bool:
    """Whether Table 1 prints a number for ``row`` on ``dataset`` (``"-"`` cells are False)."""
    return load_numbers()["table1"]["rows"][row]["top1"].get(dataset) is not None


def row_spec(S: SCRA, dataset: str, row: str, seed: int | None = None) -> RunSpec:
    """The ``RunSpec`` of one Table 1 ``row`` on ``dataset`` (a ``DATASETS`` key or ``BENCHMARK``)."""
    r = ROWS[row]
    if dataset == BENCHMARK and S.data:  # the benchmark column on your data
        data, data_kw, size = profiles.data_source(S)
    elif dataset == BENCHMARK:
        data, data_kw = "synthetic", S.benchmark.kw()
        size = S.image_size or S.benchmark.image_size
    elif dataset in DATASETS:
        data, data_kw, size = dataset, dict(S.data_kw), S.image_size
    else:
        raise KeyError(f"unknown data set {dataset!r}; use {BENCHMARK!r} or one of {list(DATASETS)}")
    model_kw = dict(S.model_kw)
    if r.dropout:
        model_kw["drop_rate"] = S.drop_rate
    train = dict(S.train)
    if seed is not None:
        train["seed"] = seed
    return RunSpec(
        model=S.model + ("_scra" if r.scra else ""),
        dataset=data,
        model_kw=model_kw,
        data_kw=data_kw,
        transform=S.transform if r.aug else S.baseline_transform,
        transform_kw={"image_size": size},
        train=train,
        regularizer={"name": "l2sp", "lam": S.l2sp_lam} if r.l2sp else None,
        pretrained=S.pretrained,
    )


def specs(S: SCRA) -> dict[str, RunSpec]:
    """Every run of the profile: ``{run_name(data set, row, seed): RunSpec}`` over data sets
    ``S.datasets``, rows ``S.rows`` (all of ``ROWS`` by default) and seeds ``S.seeds``.
    On a real data set only the cells Table 1 prints are run when ``S.only_printed``."""
    rows = S.rows or list(ROWS)
    out = {}
    for d in S.datasets:
        for row in rows:
            if d != BENCHMARK and S.only_printed and not printed(d, row):
                continue
            for seed in S.seeds or [S.train.get("seed", 0)]:
                out[run_name(d, row, seed)] = row_spec(S, d, row, seed)
    return out


def measure(spec: RunSpec, num_classes: int, image_size: int, device: str = "cpu") -> dict:
    """``fgic.cost.complexity`` of ``spec``'s model (random weights) on one ``image_size`` image.

    ``device="meta"`` builds the model without memory or weights (FLOPs are counted from shapes alone):
    ConvNeXt-V2 Large costs a few seconds this way on a CPU.
    """
    import torch

    from fgic.cost import complexity
    from fgic.models import create_model

    with torch.device(device):
        model = create_model(spec.model, num_classes=num_classes, **spec.model_kw)
    return complexity(model, (3, image_size, image_size))


def table1_rows(records: dict, S: SCRA) -> list[dict]:
    """Rows for ``fgic.viz.paper_vs_ours``: one per (Table 1 row, data set column, seed).

    ``records``: ``{run_name: Record}`` of the runs trained here. The paper's three columns get the
    paper's number and our run where one exists (else ``NOT_RUN``); the benchmark column has no paper
    number. Extra columns: ``row`` (the ``ROWS`` key), ``dataset``, ``seed``.
    """
    t = load_numbers()["table1"]["rows"]
    seeds = S.seeds or [S.train.get("seed", 0)]
    out = []
    for row in S.rows or list(ROWS):
        for d in [*DATASETS, BENCHMARK]:
            if d == BENCHMARK and BENCHMARK not in S.datasets:
                continue
            paper = None if d == BENCHMARK else t[row]["top1"][d]
            for seed in seeds:
                rec = records.get(run_name(d, row, seed))
                out.append(
                    {
                        "setting": ROWS[row].label,
                        "paper": paper,
                        "run": rec,
                        "row": row,
                        "dataset": DATASETS.get(d, "embedded benchmark"),
                        "seed": seed,
                    }
                )
    return out


# ----------------------------------------------------------------------------- heatmaps


def stage1_grad_cam(model, images, classes):
    """Grad-CAM (B, H, W) in [0, 1] on the stage-1 output (after SCRA when the model has one).

    The final ConvNeXt map is 1/32 of the input (2 x 2 at 64 px); stage 1 is at 1/4, where SCRA acts.
    ``model`` may be a ``fgic.predict.Predictor``: the class score then comes from the run's loss head.
    """
    import torch

    from fgic.cam import grad_cam_from_features
    from fgic.predict import Predictor

    net = model.net if isinstance(model, Predictor) else model
    layer = net.scra if getattr(net, "scra", None) is not None else net.body.stages[0]
    feats = []
    hook = layer.register_forward_hook(lambda m, i, o: feats.append(o))
    try:
        with torch.enable_grad():
            logits = model(images)  # (B, K)
    finally:
        hook.remove()
    return grad_cam_from_features(feats[0], logits, classes, images.shape[-2:], retain_graph=False)


def gate_heatmap(model, images, reduce: str = "mean"):
    """The SCRA gate ``last_map`` (B, C, h, w) reduced over channels to (B, H, W) in [0, 1].

    ``reduce="mean"``: the average gate per position; ``"std"``: its spread over channels, i.e. how much
    the block recalibrates channels against each other there.
    """
    import torch
    import torch.nn.functional as F

    from fgic.cam import normalize_maps

    with torch.no_grad():
        model(images)
    a = model.last_map  # (B, C, h, w)
    m = a.mean(1) if reduce == "mean" else a.std(1)  # (B, h, w)
    up = F.interpolate(m[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return normalize_maps(up)  # (B, H, W)


def gate_effect(model, images) -> dict:
    """How much stage 2's output moves when the SCRA gate is applied, in full or only its channel mean.

    Returns relative changes ``||s2(g * x) - s2(x)|| / ||s2(x)||`` of stage 2's output for the full gate
    ``g`` and for its per-position channel mean: stage 2 opens with a channel LayerNorm, which undoes any
    gate that is constant over channels at a position, so the second is ~0.
    """
    import torch

    feats = []
    hook = model.body.stages[0].register_forward_hook(lambda m, i, o: feats.append(o))
    try:
        with torch.no_grad():
            model(images)
    finally:
        hook.remove()
    x = feats[0]  # (B, C, h, w): stage-1 output before SCRA
    g = model.last_map  # (B, C, h, w)
    s2 = model.body.stages[1]
    with torch.no_grad():
        ref = s2(x)
        rel = lambda y: float((y - ref).norm() / ref.norm())
        return {"full gate": rel(s2(g * x)), "channel-mean gate": rel(s2(g.mean(1, keepdim=True) * x))}
