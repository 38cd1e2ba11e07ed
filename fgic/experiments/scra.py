"""Experiment module of notebook 05: "Fine-Grained Image Classification with ConvNeXt and SCR-Attention"
(Thushara, Ismithdeen, Abi), Table 1: a ConvNeXt-V2 baseline, then augmentation, L2-SP, dropout and the
SCRA block added one after another, on CUB-200-2011, CUB + FGVC-Aircraft and FoodX-251.

The surface every experiment module has (``fgic.experiments.base``):

- ``grid(S)``: one ``RunSpec`` per (data set column, Table 1 row, seed), keyed ``base.run_name(column, row,
  seed)``, e.g. ``"benchmark:aug_drop_scra:s1"``; rows are the ``ROWS`` keys, seeds ``S.seeds``.
- ``paper_numbers()``: Table 1's top-1 (%) per data set, from ``scra_numbers.yaml``.
- ``tables(S, records)``: per data set column ``c`` of ``S.datasets``, ``"table1/<c>"`` (every row against
  the baseline, as Table 1 prints its "(+x)" deltas) and ``"steps/<c>"`` (every row against the row it
  changes one thing in, ``STEPS``: the effect of each change on its own), both ``fgic.evidence.compare``
  tables (paired t over seeds). Beside the benchmark column stands the paper's CUB + FGVC-Aircraft column
  (``PAPER_DATASET``: the abstract's data set, the only one with a number in every row).
- ``conclusions(S, records)``: one sentence per compared row of each table, then one line per claim of the
  paper's abstract and results (``CLAIMS``), and the FLOPs budget measured on ConvNeXt-V2 Large.

What the grid trains, per profile (``params/05_convnextv2_scra.yaml``):

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
ConvNeXt-V2 Large: no memory, no weights) and returns ``fgic.cost.complexity``; ``large_cost(size)`` is the
Large baseline's and the Large + SCRA model's count (cached: ~15 s on a CPU). ``load_numbers()`` reads
``scra_numbers.yaml`` (Table 1 with its cost columns, the data sets, the recipe).

Your own data: with ``S.data`` (``fgic.profiles.settings(..., dataset="folder", data_root=...)``) the
benchmark column trains on it instead (``fgic.profiles.data_source``); run names keep the column label
``benchmark``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from fgic import evidence, profiles
from fgic.experiments import base
from fgic.experiments.base import Conclusion
from fgic.runs import RunSpec
from fgic.settings import SCRA

NOTEBOOK = "05_convnextv2_scra"
BENCHMARK = base.BENCHMARK  # the embedded benchmark's column (or your data in its place)
DATASETS = {"cub": "CUB Birds", "cub_aircraft": "CUB + FGVC Aircraft", "foodx251": "FoodX-251"}
PAPER_DATASET = "cub_aircraft"  # the paper's column beside the benchmark: every row printed, the abstract's set
BASELINE = "baseline"


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

# Table 1, one change at a time: row -> (the row it changes one thing in, what changes)
STEPS = {
    "aug": ("baseline", "augmentation"),
    "aug_l2sp": ("aug", "L2-SP"),
    "aug_l2sp_drop": ("aug_l2sp", "dropout"),
    "aug_l2sp_drop_scra": ("aug_l2sp_drop", "SCRA"),
    "aug_drop_scra": ("aug_l2sp_drop_scra", "L2-SP removed"),
}


def load_numbers() -> dict:
    """The paper's published numbers and recipe (``scra_numbers.yaml``)."""
    return yaml.safe_load(Path(__file__).with_name("scra_numbers.yaml").read_text())


def paper_numbers() -> pd.DataFrame:
    """Table 1's top-1 (%), long format: ``table1``, data set (a ``DATASETS`` key), row (a ``ROWS`` key),
    ``top1``, value; the paper's "-" cells are absent."""
    rows = load_numbers()["table1"]["rows"]
    return base.paper_frame(("table1", d, row, "top1", v) for row, r in rows.items() for d, v in r["top1"].items())


def table1() -> pd.DataFrame:
    """Table 1 as printed: one row per ``ROWS`` key; top-1 (%) per data set, GFLOPs, parameters (M)."""
    t = load_numbers()["table1"]
    out = {}
    for key, row in t["rows"].items():
        out[key] = {**{d: row["top1"][d] for d in DATASETS}, "gflops": row["gflops"], "params_m": row["params_m"]}
    return pd.DataFrame(out).T.loc[list(ROWS)]


def printed(dataset: str, row: str) -> bool:
    """Whether Table 1 prints a number for ``row`` on ``dataset`` (``"-"`` cells are False)."""
    return load_numbers()["table1"]["rows"][row]["top1"].get(dataset) is not None


def rows(S: SCRA) -> list[str]:
    """The Table 1 rows of the profile (``S.rows``, all of ``ROWS`` when unset), in Table 1's order."""
    return [r for r in ROWS if r in (S.rows or ROWS)]


def row_spec(S: SCRA, dataset: str, row: str, seed: int | None = None) -> RunSpec:
    """The ``RunSpec`` of one Table 1 ``row`` on ``dataset`` (a ``DATASETS`` key or ``BENCHMARK``);
    ``seed`` None keeps ``S.train``'s (the cost section builds models only)."""
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


@base.with_extra_seeds
def grid(S: SCRA) -> dict[str, RunSpec]:
    """Every run of the profile: ``{base.run_name(data set, row, seed): RunSpec}`` over the columns
    ``S.datasets``, the rows ``rows(S)`` and the seeds ``S.seeds``. On a real data set only the cells Table 1
    prints are run when ``S.only_printed``."""
    out = {}
    for d in S.datasets:
        for row in rows(S):
            if d != BENCHMARK and S.only_printed and not printed(d, row):
                continue
            for seed in S.seeds:
                out[base.run_name(d, row, seed)] = row_spec(S, d, row, seed)
    return out


def paper_dataset(dataset: str) -> str:
    """The paper's column whose numbers stand beside ``dataset``'s: itself, or ``PAPER_DATASET`` for the
    benchmark (or your data in its place)."""
    return dataset if dataset in DATASETS else PAPER_DATASET


def table_rows(S: SCRA, dataset: str) -> list[str]:
    """The rows of ``dataset``'s tables: the profile's rows the grid trains on that column."""
    return [r for r in rows(S) if dataset == BENCHMARK or not S.only_printed or printed(dataset, r)]


def tables(S: SCRA, records: dict) -> dict[str, pd.DataFrame]:
    """``{"table1/<column>": ..., "steps/<column>": ...}`` for every column of ``S.datasets``:
    ``fgic.evidence.compare`` tables of test top-1 over ``S.seeds`` (paired t) with the paper's number on
    ``paper_dataset(column)`` beside ours.

    ``table1``: every row against the baseline. ``steps``: every row against the row it changes one thing in
    (``STEPS``), each pair a two-row ``compare`` (its ``vs`` column names the reference row, ``change`` the
    change); ``paper_diff`` is the paper's own step."""
    numbers, out = paper_numbers(), {}
    for d in S.datasets:
        paper = base.paper_column(numbers, "table1", paper_dataset(d))
        have = table_rows(S, d)
        cells = base.cells(records, d, have, S.seeds)
        if BASELINE in have:
            out[f"table1/{d}"] = evidence.compare(cells, BASELINE, paper)
        steps = []
        for row, (ref, change) in STEPS.items():
            if row in have and ref in have:
                t = evidence.compare({ref: cells[ref], row: cells[row]}, ref, paper).loc[[row]]
                steps.append(t.assign(vs=ref, change=change))
        if steps:
            out[f"steps/{d}"] = pd.concat(steps)
    return out


def step_conclusions(name: str, table: pd.DataFrame) -> list[Conclusion]:
    """One ``Conclusion`` per row of a ``steps`` table, each against its own reference row (``vs``); a step from the
    baseline is left out (the same comparison is ``table1``'s line)."""
    return [Conclusion(f"{name}/{row}", evidence.sentence(str(row), dict(r), r["vs"]), str(r["verdict"]),
                       *base.row_numbers(table, row)) for row, r in table.iterrows() if r["vs"] != BASELINE]


@functools.lru_cache(maxsize=4)
def large_cost(image_size: int = 224, num_classes: int = 200) -> dict[str, dict]:
    """``fgic.cost.complexity`` of ConvNeXt-V2 Large without (``"baseline"``) and with SCRA (``"scra"``) on one
    ``image_size`` image, with a ``num_classes`` head, counted on the ``meta`` device (shapes only, no weights;
    ~15 s on a CPU, cached). Each dict also holds ``num_features``, the width D of the classifier's input: another
    head of K classes changes the parameters by (K - num_classes) (D + 1) and the FLOPs by 2 (K - num_classes) D."""
    import torch

    from fgic.cost import complexity
    from fgic.models import create_model

    out = {}
    for key, name in (("baseline", "convnextv2_large"), ("scra", "convnextv2_large_scra")):
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes)
        out[key] = {**complexity(model, (3, image_size, image_size)), "num_features": model.num_features,
                    "num_classes": num_classes}
    return out


# claim key -> (the claim as the paper makes it, its direction: +1 raises accuracy, -1 lowers it, table, row)
CLAIMS = {
    "augdropscra-beats-baseline": ("Augmentation + dropout + SCRA improve on the baseline (abstract and Table 1: "
                                   "89.48 -> 89.99 % on CUB + FGVC-Aircraft, +0.91 CUB, +0.82 FoodX)",
                                   +1, "table1", "aug_drop_scra"),
    "augmentation-helps": ("Data augmentation raises accuracy (section 4; Table 1: -0.02 CUB, +0.34 CUB + "
                           "Aircraft)", +1, "steps", "aug"),
    "l2sp-hurts": ("L2-SP lowers accuracy, since it holds the network near its pretrained features (section 4; "
                   "Table 1: -0.05 CUB, -0.04 CUB + Aircraft)", -1, "steps", "aug_l2sp"),
    "dropout-helps": ("Dropout raises accuracy (section 4; Table 1: +0.18 CUB, -0.14 CUB + Aircraft)",
                      +1, "steps", "aug_l2sp_drop"),
    "scra-helps": ("Adding SCRA raises accuracy (section 4; Table 1, the one row pair that isolates it: "
                   "+0.32 CUB + Aircraft)", +1, "steps", "aug_l2sp_drop_scra"),
}


def claim_verdict(table: pd.DataFrame, row: str, direction: int) -> str:
    """The verdict of a claim that ``row`` changes accuracy in ``direction`` (+1 / -1): "reproduced" when our
    difference is significant in that direction, "contradicted" when significant against it, else the table's
    own word ("no significant difference", "n < 2 paired seeds (..)", "")."""
    r = table.loc[row]
    if str(r["verdict"]) in ("reproduced", "contradicted", "B better", "B worse"):  # significant (fgic.stats)
        return "reproduced" if (r["diff"] > 0) == (direction > 0) else "contradicted"
    return str(r["verdict"])


def _claim(key: str, text: str, direction: int, table: pd.DataFrame | None, row: str,
           not_testable: str | None = None) -> Conclusion:
    if not_testable or table is None or row not in table.index:
        return Conclusion(key, evidence.claim(text, table, row, not_testable=not_testable), "not testable")
    word = claim_verdict(table, row, direction)
    line = evidence.claim(text, table.loc[[row]].assign(verdict=word), row)
    return Conclusion(key, line, "not testable" if word.startswith("n < 2") else word, *base.row_numbers(table, row))


def conclusions(S: SCRA, records: dict) -> list[Conclusion]:
    """Every table's row sentences, then one line per claim of the paper (``CLAIMS``) on each column of
    ``S.datasets``, then the FLOPs budget of the abstract measured on ConvNeXt-V2 Large (``large_cost``)."""
    tabs, out = tables(S, records), []
    for name, t in tabs.items():
        out += base.table_conclusions(name, t, BASELINE) if name.startswith("table1/") else step_conclusions(name, t)
    for d in S.datasets:
        where = f"ours, {d}" if d in DATASETS else f"ours, {'your data' if S.data else 'the embedded benchmark'}"
        for key, (text, direction, table, row) in CLAIMS.items():
            why = None
            if key == "l2sp-hurts" and not S.pretrained:
                why = ("L2-SP pulls towards pretrained weights; trained from scratch its anchor is the random "
                       "initialisation: run the paper profile with the ImageNet-22k weights on a GPU")
            out.append(_claim(f"claim/{d}/{key}", f"{text}; {where}", direction, tabs.get(f"{table}/{d}"), row, why))
    cost = large_cost(S.large_size)
    flops = {k: c["flops"] for k, c in cost.items()}
    extra = flops["scra"] / flops["baseline"] - 1
    budget = load_numbers()["abstract"]["flops_budget"]
    word = "reproduced" if extra <= budget else "contradicted"
    out.append(Conclusion(
        "claim/flops-budget",
        f"SCRA stays within the {100 * budget:.0f} % FLOPs budget over the baseline (abstract; Table 1: +0.11 %): "
        f"{word} (measured on ConvNeXt-V2 Large at {S.large_size} px: {flops['baseline'] / 1e9:.2f} -> "
        f"{flops['scra'] / 1e9:.2f} GFLOPs, {100 * extra:+.2f} %)", word))
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


# ----------------------------------------------------------------------------- heatmaps


def stage_grad_cam(model, images, classes, stage: int = 1):
    """Grad-CAM (B, H, W) in [0, 1] on the output of ConvNeXt stage ``stage`` (1-4; stage 1 after SCRA when the
    model has one).

    Stage k is at 1/2^(k+1) of the input: at 64 px stage 1 is 16 x 16 (where SCRA acts), stage 2 is 8 x 8 and the
    last map (stage 4) only 2 x 2, too coarse to locate a part; the notebook reads stages 1 and 2.
    ``model`` may be a ``fgic.predict.Predictor``: the class score then comes from the run's loss head.
    """
    import torch

    from fgic.cam import grad_cam_from_features
    from fgic.predict import Predictor

    if stage not in (1, 2, 3, 4):
        raise ValueError(f"stage must be 1-4 (ConvNeXt's stages), got {stage}")
    net = model.net if isinstance(model, Predictor) else model
    has_scra = getattr(net, "scra", None) is not None
    layer = net.scra if stage == 1 and has_scra else net.body.stages[stage - 1]
    feats = []
    hook = layer.register_forward_hook(lambda m, i, o: feats.append(o))
    try:
        with torch.enable_grad():
            logits = model(images)  # (B, K)
    finally:
        hook.remove()
    return grad_cam_from_features(feats[0], logits, classes, images.shape[-2:], retain_graph=False)


def stage1_grad_cam(model, images, classes):
    """``stage_grad_cam`` at stage 1 (where SCRA acts)."""
    return stage_grad_cam(model, images, classes, 1)


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
