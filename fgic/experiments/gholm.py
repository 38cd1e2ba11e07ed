"""Experiment grid of notebook 04: GHOLM-Net, S. Zheng, G. Wang, "Study on Fine-grained Image Classification
Based on ConvNeXt Heatmap Localization and Contrastive Learning", Computer Science 50(10):119-125, 2023.

Grids, each ``{run_name(data set, setting, seed): RunSpec}`` built from the typed settings ``S``
(``fgic.settings.GHOLM``) of ``fgic.profiles.settings("04_gholm_net", profile)``:

- ``ablation_specs``: Tables 2 / 3, the four cumulative rows of ``ROWS`` (Raw; +Crop; +Sup; +Drop);
- ``mu_specs``: Table 4, the crop threshold factor mu of eq. (5) (the mu = 1.7 run is the full model);
- ``scale_specs``: the embedded benchmark only: Raw and the full model as the birds get smaller
  (``object_scale``), where cropping should help most;
- ``comparison_specs``: Tables 6-9, the ConvNeXt-S baseline (Raw) and GHOLM-Net on each real data set.

smoke / default run the embedded benchmark only (``dataset="synthetic"`` with ``S.benchmark``), a narrow
ResNet18 backbone trained from scratch (``S.bench_model_kw``, ``S.bench_train``). The paper
profile adds the real data sets named in ``S.datasets`` (table -> data set) with ConvNeXt-S, ImageNet
weights (``pretrained``; ``S.pretrained_tags`` picks timm's weight set per data set: ImageNet-21k, and
ImageNet-1k for Stanford Dogs, as the paper says), the ``gholm`` transform preset at 448 px (Stanford Dogs:
resized straight to 448) and the paper's SGD schedule. Table 5 needs no training: ``logit_mode_accuracy``
evaluates one trained model under the three test-time logits. ``crop_coverage`` scores GHOLM's crop boxes
against the benchmark's ground-truth part boxes; ``measure_cost`` runs ``fgic.bench.gholm`` with fewer steps.

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

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import yaml

from fgic import profiles
from fgic.data.subsets import balanced_sample, targets_of
from fgic.runs import RunSpec
from fgic.settings import GHOLM

if TYPE_CHECKING:
    import pandas as pd

NOTEBOOK = "04_gholm_net"
BENCHMARK = "benchmark"  # the embedded benchmark's column: its own, never one of the paper's data sets
DATASETS = {"cub": "CUB-200-2011", "cars": "Stanford Cars", "aircraft": "FGVC-Aircraft", "dogs": "Stanford Dogs"}
ROWS = {  # Tables 2 / 3, cumulative: GHOLMNet switches of each row
    "Raw": dict(use_crop=False, use_supcon=False, use_drop=False),
    "+Crop": dict(use_supcon=False, use_drop=False),
    "+Sup": dict(use_drop=False),
    "+Drop": {},  # the full model
}
RAW, FULL = "Raw", "+Drop"
DEFAULT_MU = 1.7  # GHOLMNet's default, the paper's choice (Table 4)
COMPARISON = {"table6": "cars", "table7": "cub", "table8": "aircraft", "table9": "dogs"}
LOGIT_MODES = ("raw", "crop", "both")  # Table 5


def load_numbers() -> dict:
    """The paper's published numbers (``gholm_numbers.yaml``); Table 4's keys are floats (mu)."""
    return yaml.safe_load(Path(__file__).with_name("gholm_numbers.yaml").read_text())


def run_name(dataset: str, setting: str, seed: int = 0) -> str:
    """Key of one run: ``"<data set>:<setting>:s<seed>"``, e.g. ``"benchmark:+Drop:s0"``."""
    return f"{dataset}:{setting}:s{seed}"


def real(S: GHOLM, table: str) -> str | None:
    """The real data set of ``table`` ("table2" ... "table9") in this profile, or None (benchmark only)."""
    return S.datasets.get(table)


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
    if gholm_kw.get("mu") == DEFAULT_MU:  # same run as the full model of the ablation (same run_id)
        gholm_kw.pop("mu")
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


def _seeds(S: GHOLM, dataset: str) -> list[int]:
    return list(S.seeds or [0]) if dataset == BENCHMARK else [0]


def ablation_specs(S: GHOLM) -> dict[str, RunSpec]:
    """Tables 2 / 3: every ``ROWS`` setting on the benchmark (``S.seeds``) and on the real data sets."""
    out = {}
    for d in [BENCHMARK] + [x for x in (real(S, "table2"), real(S, "table3")) if x]:
        for row, kw in ROWS.items():
            for seed in _seeds(S, d):
                out[run_name(d, row, seed)] = spec(S, d, seed, **kw)
    return out


def mu_specs(S: GHOLM) -> dict[str, RunSpec]:
    """Table 4: the full model trained with each mu of ``S.mu_values`` (benchmark, seed 0) and, in the
    paper profile, each mu of Table 4 on its data set."""
    out = {run_name(BENCHMARK, f"mu={m}"): spec(S, BENCHMARK, mu=float(m)) for m in S.mu_values}
    d = real(S, "table4")
    if d:
        for m in load_numbers()["table4"]["mu"]:
            out[run_name(d, f"mu={m}")] = spec(S, d, mu=float(m))
    return out


def scale_name(scale: float) -> str:
    return f"{BENCHMARK}@{scale}"


def scale_specs(S: GHOLM) -> dict[str, RunSpec]:
    """Raw and the full model at each ``S.object_scales`` of the benchmark (seed 0); none on your data."""
    if S.data:
        return {}
    own = S.benchmark.object_scale
    return {
        run_name(scale_name(s), row): spec(S, BENCHMARK, object_scale=None if s == own else s, **ROWS[row])
        for s in S.object_scales
        for row in (RAW, FULL)
    }


def comparison_specs(S: GHOLM) -> dict[str, RunSpec]:
    """Tables 6-9: the ConvNeXt-S baseline (Raw) and GHOLM-Net on each real data set of this profile."""
    return {
        run_name(d, row): spec(S, d, **ROWS[row])
        for d in filter(None, (real(S, t) for t in COMPARISON))
        for row in (RAW, FULL)
    }


def specs(S: GHOLM) -> dict[str, RunSpec]:
    """Every run of the profile (grids share runs: the same setting has the same ``run_id``)."""
    return {**ablation_specs(S), **mu_specs(S), **scale_specs(S), **comparison_specs(S)}


def run(grid: dict[str, RunSpec], group: str, retrain: bool = False) -> dict:
    """Train (or reuse) every run of ``grid`` side by side; ``{name: Record}`` in the same order."""
    from fgic.runs import train_many

    unique = {}  # run_id -> (first name, spec): grids share runs, and one run must not be trained twice at once
    for name, s in grid.items():
        unique.setdefault(s.run_id, (name, s))
    names, todo = zip(*unique.values()) if unique else ((), ())
    recs = dict(zip(unique, train_many(list(todo), group=group, names=list(names), retrain=retrain)))
    return {name: recs[s.run_id] for name, s in grid.items()}


# ------------------------------------------------------------------------------------------- tables
def mean_record(records: list, metric: str = "test_top1") -> dict | None:
    """Seeds of one cell as one record for ``viz.paper_vs_ours(..., health=True)``: the mean (and std) of
    ``metric`` over the healthy seeds only (``fgic.health.run_health``), every run_id.

    A failed seed (diverged, collapsed, not finished) is never averaged in: ``seeds_ok`` counts the healthy
    seeds and ``failed`` maps each failed run_id to its reason. A cell whose seeds all failed is itself
    failed (``status`` "failed", the reasons as its ``error``), so the table says why instead of a number.
    """
    from fgic.health import run_health

    records = [r for r in records if r is not None]
    if not records:
        return None
    health = [run_health(r) for r in records]
    ok = [r for r, (good, _) in zip(records, health) if good]
    failed = {r.run_id: why for r, (good, why) in zip(records, health) if not good}
    out = {"run_id": ",".join(r.run_id for r in records), "name": records[0]["name"], "seeds_ok": len(ok),
           "failed": failed}
    if not ok:
        return {**out, "status": "failed", "error": "; ".join(f"{k}: {v}" for k, v in failed.items()), "metrics": {}}
    vals = [float(r.metrics[metric]) for r in ok]
    out["metrics"] = {
        metric: float(np.mean(vals)),
        metric + "_std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
    }
    return out


def seeds_text(cell) -> str:
    """The seed count of a ``mean_record``: "n ok" or "n ok + k failed (run_id: reason; ...)"; "" for one run."""
    if not isinstance(cell, dict) or "seeds_ok" not in cell:
        return ""
    failed = cell["failed"]
    why = "; ".join(f"{k}: {v}" for k, v in failed.items())
    return f"{cell['seeds_ok']} ok" + (f" + {len(failed)} failed ({why})" if failed else "")


def paper_and_ours(settings: dict, columns: dict, missing: dict | None = None) -> pd.DataFrame:
    """One table: ``settings`` {row: paper number}, ``columns`` {label: {row: record-like or None}}.

    Each column label gets the ``viz.paper_vs_ours(..., health=True)`` value and its run ids (``<label> run``):
    a failed run (or a seed mean whose seeds all failed) reads ``"failed: <reason>"``. A column of seed means
    (``mean_record``) also gets ``<label> seeds``: how many seeds are healthy and which failed, and why. A cell
    without a run reads ``viz.NOT_RUN``, or ``missing[label]`` where given (e.g. a benchmark run this profile skips).
    """
    import pandas as pd

    from fgic import viz

    out = pd.DataFrame({"setting": list(settings), "paper": list(settings.values())})
    for label, runs in columns.items():
        t = viz.paper_vs_ours(
            [{"setting": k, "paper": None, "run": runs.get(k), "metric": "test_top1"} for k in settings],
            health=True,
        )
        ours = t["ours"].where(t["run"] != "", (missing or {}).get(label, viz.NOT_RUN))
        out[label], out[f"{label} run"] = ours.to_numpy(), t["run"].to_numpy()
        seeds = [seeds_text(runs.get(k)) for k in settings]
        if any(seeds):
            out[f"{label} seeds"] = seeds
    return out.set_index("setting")


def comparison_table(table: str, baseline=None, ours=None) -> pd.DataFrame:
    """Tables 6-9: the paper's rows quoted as printed; our ConvNeXt (Raw) and GHOLM-Net runs beside theirs."""
    from fgic import viz

    t = load_numbers()[table]
    mine = {"ConvNeXt [9]": baseline, "GHOLM-Net (ours)": ours}
    rows = [
        {
            "setting": r["method"],
            "paper": r["acc"],
            "run": mine.get(r["method"]),
            "backbone": r["backbone"],
            "source": f"quoted: paper's Table {table[5:]}",
        }
        for r in t["rows"]
    ]
    df = viz.paper_vs_ours(rows).set_index("setting")
    df.loc[[m not in mine for m in df.index], "ours"] = "(not implemented in fgic)"
    return df.drop(columns="metric").rename(columns={"paper": f"paper: {DATASETS[t['dataset']]} (quoted)"})


# ------------------------------------------------------------------------------------------- evaluation
def test_set(spec_: RunSpec):
    """The test split of ``spec_`` with its evaluation transform."""
    from fgic.runs import build_data

    return build_data(spec_)[2]


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
