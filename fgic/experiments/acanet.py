"""Experiment grid of notebook 01: "ACANet: A Fine-grained Image Classification Optimization Method Based
on Convolution and Attention Fusion" (Tan & Xu, 2023), Tables 2-4 and Figs. 8-9.

Built from the typed settings ``S`` (``fgic.settings.ACANet``) of ``fgic.profiles.settings("01_acanet", profile)``:

- ``table2_specs(S)``: models x losses x data sets (Table 2; ACANet's CE/Focal/MC rows are the paper's);
- ``table3_specs(S)``: backbones under CE (Table 3);
- ``table4_specs(S)``: the ablation (complete / minus ACCB / minus FCSA+ACCB, and our extra row: complete
  with conv downsampling) under CE and MC, several seeds;
- ``specs(S)``: all of them, one entry per distinct run (the tables share runs: Table 3's ResNet18 and
  ACANet rows are Table 2's CE rows, Table 4's seed-``S.seed`` complete rows are ACANet's Table 2 rows).

Data sets are registry names (``cub``, ``cars``, ``flowers102``) or ``"synthetic"``, the embedded benchmark
with ``S.benchmark`` (its own column in every table, never the paper's data). smoke / default run the
benchmark only, with the per-model ``S.model_kw`` (narrow widths, FCSA restricted to the deep stages)
and ``S.train``; the paper profile runs the real data sets at 224 px with the paper's schedule (SGD,
lr 0.1, x0.1 at epochs 200 and 400, 600 epochs, from scratch) on the whole official training split
(``S.val_fraction = 0``: no validation split, the last epoch is reported, as the paper), while smoke /
default hold out a seeded 10 % of each class as validation (our addition; reported, never used for
selection). Published numbers: ``paper_numbers()``.

Patchify ablation (our addition; the paper discusses it but has no row for it): the paper says its
"Minus (FCSA+ACCB)" row cannot separate the attention from "the new downsampling layer". The grid model
``acanet18_convdown`` (``VARIANTS``) is the complete ACANet with torchvision's 1x1 stride-2 conv + BN
shortcuts (``down="conv"``) instead of the 2x2 stride-2 patchify ones, everything else equal, so the
Table 4 grid measures what patchify adds to the complete model.

Your own data: with ``S.data`` (``fgic.profiles.settings(..., dataset="folder", data_root=...)``) the
benchmark column (``BENCHMARK``) trains on it instead (``fgic.profiles.data_source``); run names keep the column label.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from fgic import profiles
from fgic.runs import RunSpec
from fgic.settings import ACANet

NOTEBOOK = "01_acanet"
BENCHMARK = "synthetic"  # the embedded benchmark's registry name
# row / column labels of the paper -> registry names
MODELS = {"ResNet 18": "resnet18", "VGG 16": "vgg16", "ACANet (ours)": "acanet18"}
LOSSES = {
    "CE Loss": "ce",
    "Focal Loss": "focal",
    "MC Loss": "mc",
    "Center Loss": "center",
    "A-softmax Loss": "asoftmax",
    "COCO Loss": "coco",
    "LGM Loss": "lgm",
    "LMCL Loss": "cosface",
}
DATASETS = {"CUB-200-2011": "cub", "Stanford Cars": "cars", "Flower-102": "flowers102"}
BACKBONES = {
    "ResNet 18": "resnet18",
    "VGG 16": "vgg16",
    "GoogleNet": "googlenet",
    "MobileNetV3": "mobilenetv3_large",
    "DenseNet": "densenet121",
    "ConvNeXt": "convnext_tiny_tv",
    "ACANet (ours)": "acanet18",
}
ABLATION = {
    "Complete structure": "acanet18",
    "Minus ACCB": "acanet18_no_accb",
    "Minus (FCSA+ACCB)": "acanet18_plain",
    "Conv downsampling (ours)": "acanet18_convdown",
}
# grid model name -> (registered model, extra model_kw); its model_kw base is the registered model's entry
VARIANTS = {"acanet18_convdown": ("acanet18", {"down": "conv"})}


def paper_numbers() -> dict:
    """The paper's published top-1 accuracies in % (``acanet_numbers.yaml``): tables 2, 3, 4."""
    return yaml.safe_load(Path(__file__).with_name("acanet_numbers.yaml").read_text())


def paper_value(table: str, model: str, key: str, dataset: str | None = None) -> float | None:
    """One published number or None: ``paper_value("table2", "acanet18", "mc", "cub")``,
    ``paper_value("table3", "googlenet", "cars")``, ``paper_value("table4", "acanet18_plain", "ce")``."""
    cell = paper_numbers()[table].get(model, {}).get(key)
    if isinstance(cell, dict):
        return cell.get(dataset)
    return cell


def run_name(model: str, loss: str, dataset: str, seed: int) -> str:
    """Key of a run in the spec dicts, e.g. ``"acanet18-mc-synthetic-s0"`` (also the record's name)."""
    return f"{model}-{loss}-{dataset}-s{seed}"


def make_spec(S: ACANet, model: str, loss: str = "ce", dataset: str = BENCHMARK, seed: int | None = None) -> RunSpec:
    """One run of the profile: ``model`` (a registry name or a ``VARIANTS`` name) and ``loss`` on ``dataset``
    with training seed ``seed``."""
    seed = S.seed if seed is None else seed
    base, extra = VARIANTS.get(model, (model, {}))
    kw = S.model_kw
    model_kw = {**(kw.get(model) or kw.get(base) or {}), **extra}
    if dataset == BENCHMARK:  # the benchmark column: the embedded benchmark, or your data (S.data)
        data, data_kw, size = profiles.data_source(S)
    else:
        data, data_kw, size = dataset, dict(S.data_kw), S.image_size
    if S.val_fraction is not None:  # paper profile: 0, the whole official training split (no validation split)
        data_kw["val_fraction"] = float(S.val_fraction)
    return RunSpec(
        model=base,
        dataset=data,
        loss=loss,
        model_kw=model_kw,
        loss_kw=dict(S.loss_kw.get(loss) or {}),
        data_kw=data_kw,
        transform=S.transform,
        transform_kw={"image_size": size},
        train={**S.train, "seed": seed},
    )


def _grid(S: ACANet, models, losses, datasets, seeds) -> dict[str, RunSpec]:
    return {
        run_name(m, lo, d, s): make_spec(S, m, lo, d, s)
        for d in datasets
        for m in models
        for lo in losses
        for s in seeds
    }


def table2_specs(S: ACANet) -> dict[str, RunSpec]:
    """Table 2: ``S.table2.models`` x ``S.table2.losses`` on every data set of ``S.datasets``."""
    return _grid(S, S.table2.models, S.table2.losses, S.datasets, [S.seed])


def table3_specs(S: ACANet) -> dict[str, RunSpec]:
    """Table 3: the backbones ``S.table3.models`` under CE on every data set of ``S.datasets``."""
    return _grid(S, S.table3.models, ["ce"], S.datasets, [S.seed])


def table4_specs(S: ACANet) -> dict[str, RunSpec]:
    """Table 4: the ablation models x ``S.table4.losses`` x ``.seeds`` on ``.datasets``."""
    t = S.table4
    return _grid(S, t.models, t.losses, t.datasets, t.seeds)


def specs(S: ACANet) -> dict[str, RunSpec]:
    """Every distinct run of the profile (tables 2, 3, 4 merged; a shared run appears once)."""
    out: dict[str, RunSpec] = {}
    for part in (table2_specs(S), table3_specs(S), table4_specs(S)):
        out.update(part)
    return out


def label_of(mapping: dict, name: str) -> str:
    """The paper's label of registry name ``name`` in ``mapping`` (e.g. ``MODELS``), or ``name`` itself."""
    return next((k for k, v in mapping.items() if v == name), name)


def comparison_rows(table: str, S: ACANet, records: dict, models, losses=("ce",)) -> list[dict]:
    """Rows for ``fgic.viz.paper_vs_ours``: one per (model, loss, data set column).

    The columns are the paper's three data sets and the benchmark; ``records`` maps ``run_name`` -> record
    (a missing key = not run here). ``table`` is "table2" or "table3" (where the paper's number comes from).
    """
    rows = []
    for m in models:
        for lo in losses:
            for label, d in [*DATASETS.items(), ("benchmark (ours)", BENCHMARK)]:
                key = (m, d) if table == "table3" else (m, lo, d)
                paper = None if d == BENCHMARK else paper_value(table, *key)
                names = {"table2": MODELS, "table3": BACKBONES}[table]
                rows.append({
                    "setting": f"{label_of(names, m)} / {label_of(LOSSES, lo)} / {label}",
                    "model": label_of(names, m),
                    "loss": label_of(LOSSES, lo),
                    "dataset": label,
                    "paper": paper,
                    "run": records.get(run_name(m, lo, d, S.seed)),
                })
    return rows


def wide(df, index=("model", "loss")):
    """A long ``paper_vs_ours`` table -> one row per (model, loss), paper / ours / run per data set."""
    import pandas as pd

    cols = list(DATASETS) + ["benchmark (ours)"]
    out = df.pivot_table(index=list(index), columns="dataset", values=["paper", "ours", "run"],
                         aggfunc="first", sort=False)
    out = out.swaplevel(0, 1, axis=1)
    order = [(c, v) for c in cols for v in ("paper", "ours", "run") if (c, v) in out.columns]
    out = out[order]
    out = out.drop(columns=[("benchmark (ours)", "paper")], errors="ignore")  # the paper has no such column
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    empty = [c for c in out.columns if c[1] == "run" and not out[c].fillna("").astype(bool).any()]
    return out.drop(columns=empty)  # a "run" column with no run in it says nothing


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
