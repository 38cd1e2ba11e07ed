"""Experiment module of notebook 06: one fair cross-paper study of every attention module on one harness.

Every study module of the five seed papers (``fgic.models.study.list_study_modules()``: paper 000's ACCB, FCSA
and patchify shortcuts; paper 001's CA / SA / CSCA units and CAM-attention head; paper 002's SE / softmax-SA / MA
on top; paper 004's SCRA after stage 1) goes into ONE backbone builder (``create_model(S.model, K, module=...)``:
``study_resnet18`` in the smoke / default profiles, ``study_resnet50`` in the paper profile) at the place its
paper puts it, and every row is trained with the same data, augmentation, schedule and seeds. The study is a
grid over the one ``module=`` argument: a module registered by a new file of ``fgic/study_modules/`` is a new
row with no change here (``S.modules: all``; a list picks some). Two rows that are not modules join them:

- ``none+<loss>``: the plain backbone (``module="none"``) trained with ``S.loss``, notebook 01's best loss on the
  plain backbone. Choice: notebook 01's committed default records (Table 2, ResNet18 width 8, 5 seeds) rank CE
  first (65.5 +- 5.8 %) and MC second (62.0 +- 5.3 %); CE is the baseline's own loss, so the row is the best loss
  other than CE: MC (``S.loss: mc``). ``best_loss`` recomputes that ranking from records.
- ``none+GHOLM``: paper 003's GHOLM-Net (Grad-CAM crop and erase branches, SupCon; ``fgic.models.gholm``) on the
  plain backbone. GHOLM changes the training step, not the network, so it is no module; the existing wrapper
  takes it as a model name (``S.gholm_model``): ``gholm_resnet18`` wraps torchvision's ResNet18 built by
  ``create_model("resnet18")``, the same architecture as ``study_resnet18`` with ``module="none"`` (same
  layout and names; tests/test_experiments_cross_study.py checks the state dicts). No GHOLM-Net on a ResNet-50
  is registered, so the paper profile sets ``gholm_model: null`` and the row is reported as not run (why).

The surface (``fgic.experiments.base``): ``grid(S)`` (``run_name(S.dataset, row, seed)``, one run per row and
seed, seed-major), ``paper_numbers()`` (each row's gain over its own baseline as its paper reports it),
``tables(S, records)`` (the accuracy table: ``evidence.compare`` against ``none``, paired over seeds; its
``paper`` column is the paper's gain, so the verdict says whether the paper's sign is reproduced) and
``conclusions(S, records)`` (one line per compared row, one per paper claim, the ranking). They read records
only, so ``fgic reproduce`` runs on committed records without weights.

Measured from the trained weights (the notebook's other sections; each function short, its choices here):

- ``cost_table(S)``: parameters, GMACs / GFLOPs (one image, ``fgic.cost.complexity``), inference and training
  images / s, every network in this process with the same batch, thread count (``S.cost``) and input size;
  training = forward + backward + SGD step through ``fgic.engine.TrainModule`` (GHOLM: its three branches),
  inference = the run's test-time scores (GHOLM: raw + crop, Grad-CAM included). Random weights (same cost).
- ``localisation_table(S, records)``: Grad-CAM (``fgic.cam.grad_cam`` through the run's Predictor, true class)
  of every healthy run on the same class-balanced, seeded test images (``S.n_heatmaps`` per class), scored by
  ``fgic.localize`` (pointing game and energy in the discriminative-part and object boxes), mean over seeds,
  with the centre prior on the same images as the reference row; ``energy_part`` compared with ``none``
  paired over seeds (continuous, so more sensitive than the pointing game's hits).
- ``robustness_table(S, records)``: the same runs on a shifted test split the generator makes with the knobs
  ``S.shift`` (default: birds 0.52-0.67 of the side, below the training range 0.81-1.05); the accuracy drop
  (shifted - clean) paired with ``none``'s over seeds. On a real data set: an empty table saying why.

``localisation_conclusions`` / ``robustness_conclusions`` turn those two tables into lines (not part of
``conclusions``, which needs no weights). ``accuracy_vs_cost`` and ``pareto_front`` draw the cost figure.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import statistics
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from fgic import evidence, profiles
from fgic.experiments import base
from fgic.experiments.base import BENCHMARK, Conclusion
from fgic.health import run_health
from fgic.runs import Record, RunSpec
from fgic.settings import CrossStudy

NOTEBOOK = "06_cross_paper_study"
BASELINE = "none"  # the plain backbone: every row is compared with it, paired over seeds
GHOLM_ROW = "none+GHOLM"
LOSS_LABELS = {"ce": "CE", "mc": "MC", "focal": "Focal", "center": "Center", "cosface": "LMCL"}
LOC_KEYS = ("pointing_part", "energy_part", "iou_part", "pointing_object", "energy_object", "iou_object")
LOC_COMPARED = "energy_part"  # the localisation score paired with none's (continuous: more sensitive)
PRIOR = "centre prior (reference)"
# row -> (experiment module, its paper table, data set, the row with the module, its baseline row, what it is):
# the gain the paper reports for the module over its own baseline
PAPER_GAINS = {
    "accb": ("acanet", "table4", "cub", "ACANet/CE", "ACANet-ACCB/CE",
             "ACANet Table 4, CUB, CE: complete - minus ACCB"),
    "fcsa": ("acanet", "table4", "cub", "ACANet-ACCB/CE", "ACANet-(FCSA+ACCB)/CE",
             "ACANet Table 4, CUB, CE: minus ACCB - minus (FCSA+ACCB)"),
    "ca": ("multi_attention", "table1", "CUB-200", "CA-ResNet50", "ResNet50", "Du & Ma Table 1, CUB"),
    "sa": ("multi_attention", "table1", "CUB-200", "SA-ResNet50", "ResNet50", "Du & Ma Table 1, CUB"),
    "csca": ("multi_attention", "table1", "CUB-200", "CSCA-ResNet50", "ResNet50", "Du & Ma Table 1, CUB"),
    "cam_head": ("multi_attention", "table1", "CUB-200", "FCN-ResNet50", "ResNet50", "Du & Ma Table 1, CUB"),
    "se": ("mixed_attention", "table2", "Stanford Cars-196", "ResNet-50/CA", "ResNet-50/Baseline",
           "Li et al. Table II, ResNet-50, Cars (its first data set)"),
    "softmax_sa": ("mixed_attention", "table2", "Stanford Cars-196", "ResNet-50/SA-Ours", "ResNet-50/Baseline",
                   "Li et al. Table II, ResNet-50, Cars (its first data set)"),
    "ma": ("mixed_attention", "table2", "Stanford Cars-196", "ResNet-50/MA-Ours", "ResNet-50/Baseline",
           "Li et al. Table II, ResNet-50, Cars (its first data set)"),
    "scra": ("scra", "table1", "cub_aircraft", "aug_l2sp_drop_scra", "aug_l2sp_drop",
             "Thushara et al. Table 1, CUB + Aircraft: the one step that adds only SCRA"),
    "none+MC": ("acanet", "table2", "cub", "ResNet18/MC", "ResNet18/CE", "ACANet Table 2, ResNet18, CUB: MC - CE"),
    GHOLM_ROW: ("gholm", "table2", "cub", "+Drop", "Raw", "GHOLM-Net Table 2, CUB: full - Raw"),
}
NO_GAIN = {"patchify": "the ACANet paper has no row that adds patchify alone",
           BASELINE: "the baseline"}


# ------------------------------------------------------------------------------------------- rows and grid
def module_rows(S: CrossStudy) -> list[str]:
    """The study modules of the profile (``S.modules``: "all" = every registered one), ``none`` first."""
    from fgic.models.study import list_study_modules

    known = list_study_modules()
    chosen = known if S.modules == "all" else list(S.modules)
    unknown = [m for m in chosen if m not in known]
    if unknown:
        raise KeyError(f"modules {unknown} are not registered study modules ({known})")
    return [BASELINE, *(m for m in chosen if m != BASELINE)]


def loss_row(S: CrossStudy) -> str | None:
    """``"none+MC"``: the plain backbone trained with ``S.loss`` (None without a loss row)."""
    return f"{BASELINE}+{LOSS_LABELS.get(S.loss, S.loss)}" if S.loss else None


def rows(S: CrossStudy) -> list[str]:
    """Every compared row: the modules (``none`` first), the loss row, GHOLM (when run)."""
    extra = [loss_row(S), GHOLM_ROW if S.gholm_model else None]
    return [*module_rows(S), *(r for r in extra if r)]


def data_source(S: CrossStudy) -> tuple[str, dict, int]:
    """(data set, build_dataset kwargs, input size) of every run: your data (``S.data``: the notebook's ``DATASET``,
    e.g. ``"cars"`` in the paper profile), else the benchmark or ``S.dataset``. Run names keep ``S.dataset``."""
    if S.dataset == BENCHMARK or S.data is not None:
        data, data_kw, size = profiles.data_source(S)
    else:
        data, data_kw, size = S.dataset, dict(S.data_kw), int(S.image_size)
    if S.val_fraction is not None:
        data_kw["val_fraction"] = float(S.val_fraction)
    return data, data_kw, size


def spec(S: CrossStudy, row: str, seed: int) -> RunSpec:
    """The run of ``row`` (a module name, the loss row or ``GHOLM_ROW``) with training seed ``seed``."""
    data, data_kw, size = data_source(S)
    model, model_kw, loss, loss_kw = S.model, {**S.model_kw, "module": row}, "ce", {}
    if row == loss_row(S):
        model_kw["module"], loss, loss_kw = BASELINE, S.loss, dict(S.loss_kw)
    elif row == GHOLM_ROW:
        if not S.gholm_model:
            raise KeyError(f"{GHOLM_ROW} is not run in this profile (gholm_model is null)")
        model, model_kw = S.gholm_model, {**S.model_kw, **S.gholm_kw}
    else:
        model_kw.update(S.module_kw.get(row) or {})
    return RunSpec(model=model, dataset=data, loss=loss, model_kw=model_kw, loss_kw=loss_kw, data_kw=data_kw,
                   transform=S.transform, transform_kw={"image_size": size}, train={**S.train, "seed": int(seed)},
                   pretrained=S.pretrained)


@base.with_extra_seeds
def grid(S: CrossStudy) -> dict[str, RunSpec]:
    """Every run: ``{run_name(S.dataset, row, seed): RunSpec}``, seed-major (the workers start on different rows),
    GHOLM's runs first: its three-branch step costs ~3x a plain one, and a queue that starts with its longest runs
    ends on short ones (both cores busy to the end; ``fgic.notebooks.pretrain`` also times the first run)."""
    order = [(r, s) for r in rows(S) if r == GHOLM_ROW for s in S.seeds]
    order += [(r, s) for s in S.seeds for r in rows(S) if r != GHOLM_ROW]
    return {base.run_name(S.dataset, r, s): spec(S, r, s) for r, s in order}


def describe_rows(S: CrossStudy) -> pd.DataFrame:
    """One line per row: its paper, where it goes, what it is (the registry's words for the modules)."""
    from fgic.models.study import describe_study_modules

    known = {d["name"]: d for d in describe_study_modules()}
    out = [known[m] for m in module_rows(S)]
    if S.loss:
        out.append({"name": loss_row(S), "paper": "000", "where": "the loss (module none)",
                    "description": f"the plain backbone trained with the {S.loss} loss (notebook 01's best)"})
    why = "" if S.gholm_model else f" (not run in this profile: {S.gholm_why})"
    out.append({"name": GHOLM_ROW, "paper": "003", "where": "the training step (module none)",
                "description": f"GHOLM-Net: Grad-CAM crop and erase branches + SupCon{why}"})
    return pd.DataFrame(out).set_index("name")


def best_loss(records: Mapping[str, object], model_label: str = "ResNet18", exclude: str = "CE") -> str | None:
    """The loss label (e.g. "MC") whose notebook-01 rows ``benchmark:<model_label>/<loss>:s*`` have the highest mean
    healthy test top-1, ``exclude`` (the baseline's own loss) left out; None without such records."""
    means: dict[str, list[float]] = {}
    for name, rec in records.items():
        try:
            _, row, _ = base.parse_run_name(name)
        except ValueError:
            continue
        model, _, loss = row.partition("/")
        if model == model_label and loss and loss != exclude and run_health(rec)[0]:
            means.setdefault(loss, []).append(float(rec["metrics"]["test_top1"]))
    return max(means, key=lambda k: statistics.fmean(means[k])) if means else None


# ------------------------------------------------------------------------------------------- paper numbers
@functools.cache
def _paper_gain(row: str) -> tuple[float, str] | None:
    """(the paper's gain of ``row`` over its own baseline in points, where it comes from), or None."""
    if row not in PAPER_GAINS:
        return None
    mod, table, dataset, with_it, without, what = PAPER_GAINS[row]
    col = base.paper_column(importlib.import_module(f"fgic.experiments.{mod}").paper_numbers(), table, dataset)
    if with_it not in col or without not in col:
        return None
    return col[with_it] - col[without], f"{what}: {col[with_it]:.2f} vs {col[without]:.2f}"


def paper_numbers() -> pd.DataFrame:
    """Each row's gain over its own baseline as its paper reports it (points): ``table = "gain"``, ``dataset`` =
    the paper's data set, ``row`` = our row label, ``metric = "gain"``."""
    out = []
    for row, (_, _, dataset, *_rest) in PAPER_GAINS.items():
        g = _paper_gain(row)
        out.append(("gain", dataset, row, "gain", None if g is None else round(g[0], 4)))
    return base.paper_frame(out)


# ------------------------------------------------------------------------------------------- accuracy
def accuracy_table(S: CrossStudy, records: Mapping[str, object]) -> pd.DataFrame:
    """``evidence.compare`` of every row against ``none`` (paired over seeds); ``paper`` = the paper's gain of the
    row over its own baseline (``none`` 0), so the verdict is "reproduced" / "contradicted" / "no significant
    difference" where the paper gives a gain, else "B better" / "B worse"; ``source`` says where it comes from."""
    cells = base.cells(records, S.dataset, rows(S), S.seeds)
    gains = {r: g for r in cells if (g := _paper_gain(r)) is not None}
    t = evidence.compare(cells, BASELINE, {BASELINE: 0.0, **{r: g[0] for r, g in gains.items()}})
    t["source"] = [gains[r][1] if r in gains else NO_GAIN.get(r, "no paper number") for r in t.index]
    t.attrs["caption"] = (f"Test top-1 (%) on {S.dataset}, mean +- std over seeds; diff = paired difference with "
                          f"{BASELINE} [95 % CI]; paper = the paper's gain of the module over its own baseline")
    return t


def tables(S: CrossStudy, records: Mapping[str, object]) -> dict[str, pd.DataFrame]:
    """``{"accuracy/<data set>": accuracy_table}``: the records-only comparison table of the study."""
    return {f"accuracy/{S.dataset}": accuracy_table(S, records)}


def view(table: pd.DataFrame, reference: str = BASELINE) -> pd.DataFrame:
    """A ``compare`` table as shown: paper gain | ours mean +- std (n) | diff [95 % CI] | p | verdict | failed
    (``multi_attention.view``'s columns, the paper's number being a gain here, shown only where there is one)."""
    from fgic.experiments.multi_attention import view as shown

    out = shown(table, reference).drop(columns="paper")
    if "paper" in table and table["paper"].notna().any():
        out.insert(0, "paper gain", table["paper"].map(lambda v: "" if pd.isna(v) else f"{v:+.2f}"))
    return out


def ranking(table: pd.DataFrame, cost: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows of an accuracy table by mean test top-1 (best first), with their paired verdict vs ``none`` and,
    given a ``cost_table``, parameters, GMACs and images / s."""
    t = table.sort_values("mean", ascending=False, na_position="last")
    out = view(t)
    out.insert(0, "rank", range(1, len(t) + 1))
    if cost is not None:
        out = out.join(cost[["params (M)", "GMACs", "infer img/s", "train img/s"]])
    return out


# ------------------------------------------------------------------------------------------- conclusions
def _claim(S: CrossStudy, table: pd.DataFrame, row: str) -> Conclusion:
    gain = _paper_gain(row)
    where = f"on {S.data.dataset if S.data is not None else S.dataset}"
    if gain is None:
        text = f"{row} improves over the plain backbone"
        line = evidence.claim(text, not_testable=NO_GAIN.get(row, "its paper reports no gain for it alone"))
        return Conclusion(f"claim/{S.dataset}/{row}", line, "not testable")
    text = f"{row} improves over the plain backbone (paper: {gain[0]:+.2f} points, {gain[1]}), tested {where}"
    line = evidence.claim(text, table, row)
    verdict = "not testable" if ": not testable here" in line else str(table.loc[row, "verdict"])
    return Conclusion(f"claim/{S.dataset}/{row}", line, verdict, *base.row_numbers(table, row))


def _ranking_line(S: CrossStudy, table: pd.DataFrame) -> Conclusion:
    t = table[table["n"] > 0].sort_values("mean", ascending=False)

    def seeds(r) -> str:  # a mean over fewer seeds says so, and why
        failed = t.loc[r, "failed"] if isinstance(t.loc[r, "failed"], str) else ""
        return f"n={int(t.loc[r, 'n'])}, {failed.split(' (')[0]}; " if failed else ""

    parts = [f"{i}. {r} {t.loc[r, 'mean']:.1f} % ({seeds(r)}{t.loc[r, 'verdict'] or '-'})"
             for i, r in enumerate(t.index, 1)]
    return Conclusion(f"ranking/{S.dataset}", f"Ranking by mean test top-1 (verdict vs {BASELINE}): "
                      + "; ".join(parts) + ".", "ranking")


def conclusions(S: CrossStudy, records: Mapping[str, object]) -> list[Conclusion]:
    """Computed lines: every row against ``none`` (``base.table_conclusions``), one line per paper claim (the
    paper's gain for its module: reproduced / contradicted / no significant difference / not testable here (why)),
    and the ranking with the paired verdicts."""
    t = accuracy_table(S, records)
    out = base.table_conclusions(f"accuracy/{S.dataset}", t, BASELINE)
    out += [_claim(S, t, r) for r in t.index if r != BASELINE]
    if not S.gholm_model:
        out.append(Conclusion(f"claim/{S.dataset}/{GHOLM_ROW}", evidence.claim(
            f"{GHOLM_ROW} improves over the plain backbone", not_testable=f"not run in this profile: {S.gholm_why}"),
            "not testable"))
    return [*out, _ranking_line(S, t)]


# ------------------------------------------------------------------------------------------- cost
def num_classes(S: CrossStudy, records: Mapping[str, object] | None = None) -> int:
    """K of the runs: from a record, else the benchmark's, else the data set's training split."""
    for rec in (records or {}).values():
        if rec and rec.get("num_classes"):
            return int(rec["num_classes"])
    if S.dataset == BENCHMARK and S.data is None:
        return S.benchmark.num_classes
    from fgic.data import build_dataset

    data, data_kw, _ = data_source(S)
    return len(build_dataset(data, split="train", **{"seed": 0, **data_kw}).classes)


def _median_seconds(fn, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(spec_: RunSpec, k: int, size: int, batch: int, repeats: int, warmup: int, device: str = "cpu",
            bf16: bool = False) -> dict:
    """Cost of one run's network (random weights): training images / s of the network as trained; params, GMACs,
    GFLOPs and inference images / s of the network as deployed (``fgic.models.reparameterize``: ACCB's three
    branches fused into one 3x3 conv, so inference costs what the fused network costs). ``bf16``: both passes
    under bf16 autocast (what the engine's ``precision="auto"`` trains with on a GPU)."""
    import contextlib
    import copy

    from fgic.cost import complexity
    from fgic.engine import TrainModule
    from fgic.losses import create_loss
    from fgic.models import create_model, reparameterize

    torch.manual_seed(0)
    model = create_model(spec_.model, num_classes=k, **spec_.model_kw)
    crit = create_loss(spec_.loss, num_classes=k, feat_dim=model.num_features, **spec_.loss_kw)
    fmt = torch.channels_last if spec_.train.get("channels_last") else torch.contiguous_format
    module = TrainModule(model, crit).to(device=device, memory_format=fmt)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)  # (B, 3, H, W)
    y = (torch.arange(batch, device=device) // 2) % k  # pairs of one class: SupCon has positives
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    opt = torch.optim.SGD(module.parameters(), lr=1e-4, momentum=0.9)
    module.train()

    dev_type = torch.device(device).type
    amp = (lambda: torch.autocast(dev_type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def step():  # forward + backward + SGD step, as the engine trains
        with amp():
            loss, _ = module(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()

    train = _median_seconds(step, repeats, warmup)
    deployed = reparameterize(copy.deepcopy(model).cpu())  # eval mode, training-time branches fused
    c = complexity(deployed, (3, size, size))  # one image
    served = TrainModule(deployed, crit).to(device=device, memory_format=fmt).eval()
    with torch.no_grad(), amp():
        infer = _median_seconds(lambda: (served(x), sync()), repeats, warmup)  # the run's test-time scores
    return {"params (M)": c["params"] / 1e6, "GMACs": c["gmacs"], "GFLOPs": c["gflops"],
            "infer img/s": batch / infer, "train img/s": batch / train,
            "infer ms/img": 1e3 * infer / batch, "train ms/img": 1e3 * train / batch,
            "fused blocks": deployed.num_reparameterized}


def cost_table(S: CrossStudy, num_classes_: int | None = None, device: str = "cpu") -> pd.DataFrame:
    """One row per row of the study: ``measure`` of its network, all in this process, with ``S.cost``'s batch,
    repeats and thread count (``threads`` 0: the process's own) at the runs' input size."""
    from fgic.trainer import intra_op_threads

    k = num_classes_ or num_classes(S)
    size = data_source(S)[2]
    c = S.cost
    out = {}
    with intra_op_threads(c.threads):
        threads = torch.get_num_threads()
        for r in rows(S):
            out[r] = {**measure(spec(S, r, S.seeds[0]), k, size, c.batch, c.repeats, c.warmup, device),
                      "threads": threads, "batch": c.batch, "size": size}
    t = pd.DataFrame.from_dict(out, orient="index")
    t.attrs["caption"] = (f"Cost at {size} px, {k} classes, batch {c.batch}, median of {c.repeats} timed batches, "
                          f"{threads} thread(s), {device}, one process")
    return t


def pareto_front(points: pd.DataFrame, cost: str, acc: str = "mean") -> list[str]:
    """Rows no other row beats on both axes (lower or equal ``cost`` and higher or equal ``acc``, one strictly)."""
    p = points[[cost, acc]].dropna()
    return [r for r in p.index if not any(
        (p.loc[o, cost] <= p.loc[r, cost] and p.loc[o, acc] >= p.loc[r, acc]
         and (p.loc[o, cost] < p.loc[r, cost] or p.loc[o, acc] > p.loc[r, acc])) for o in p.index if o != r)]


def spread_labels(values, gap: float) -> np.ndarray:
    """Label positions as close to ``values`` as possible, at least ``gap`` apart, in the same order (1-D)."""
    v = np.asarray(values, dtype=float)
    order = np.argsort(v, kind="stable")
    out = v[order].copy()
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + gap)
    out -= (out - v[order]).mean()  # centred on the points again; the gaps stay
    res = np.empty_like(out)
    res[order] = out
    return res


def accuracy_vs_cost(ax, table: pd.DataFrame, cost: pd.DataFrame, x: str = "GMACs", logx: bool = False) -> list[str]:
    """Mean test top-1 +- std (error bars) of every row against ``cost[x]``, one colour per row and its name beside
    it (names of points at nearly the same cost stand in a column right of them, spread apart and joined to their
    point), the Pareto front ringed and joined, the baseline's mean as a dashed line; returns the front's rows."""
    import matplotlib
    from matplotlib.transforms import ScaledTranslation

    d = table[["mean", "std"]].join(cost[[x]]).dropna(subset=["mean", x])
    colors = matplotlib.colormaps["tab20"].colors
    xs = np.log10(d[x].to_numpy(dtype=float)) if logx else d[x].to_numpy(dtype=float)
    width = max(float(np.ptp(xs)), 1e-12)
    # clusters: points chained by x gaps under 10 % of the range (about a name's width), one column of names each
    order = np.argsort(xs, kind="stable")
    cluster = np.empty(len(xs), dtype=int)
    cluster[order] = np.concatenate([[0], np.cumsum(np.diff(xs[order]) > 0.1 * width)])
    label_x, label_y = xs.copy(), d["mean"].to_numpy(dtype=float).copy()
    for c in np.unique(cluster):
        idx = np.flatnonzero(cluster == c)
        if len(idx) > 1:  # a column of names right of the cluster, spread apart, each joined to its point
            label_y[idx] = spread_labels(label_y[idx], 0.065 * max(float(np.ptp(d["mean"])), 1.0))
            label_x[idx] = xs[idx].max() + 0.04 * width
    label_x = 10**label_x if logx else label_x
    beside = ax.transData + ScaledTranslation(5 / 72, 0, ax.figure.dpi_scale_trans)  # 5 points right
    for i, (r, v) in enumerate(d.iterrows()):
        ax.errorbar(v[x], v["mean"], yerr=0 if pd.isna(v["std"]) else v["std"], fmt="o", color=colors[i % 20],
                    capsize=3, zorder=3)
        moved = label_x[i] != v[x] or label_y[i] != v["mean"]
        ax.annotate(r, (v[x], v["mean"]), xytext=(label_x[i], label_y[i]), textcoords=beside, fontsize=7,
                    va="center", color="0.15", bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8),
                    arrowprops=dict(arrowstyle="-", lw=0.6, color=colors[i % 20]) if moved else None)
    front = pareto_front(d, x)
    f = d.loc[front].sort_values(x)
    ax.plot(f[x], f["mean"], color="k", lw=1, alpha=0.7, marker="o", ms=12, mfc="none", label="Pareto front")
    if BASELINE in d.index:
        ax.axhline(d.loc[BASELINE, "mean"], ls="--", color="gray", lw=0.8)
    ax.set_xscale("log" if logx else "linear")
    ax.margins(x=0.1)  # room for the names right of the last points
    ax.set_xlabel(x)
    ax.set_ylabel("test top-1 (%)")
    return front


def showcase_runs(S: CrossStudy, records: Mapping[str, object]) -> dict[str, str]:
    """``{row: run name}`` of the network each row shows in the heatmap grid: its first seed whose run is healthy
    and has weights (``_usable``, as the score tables), else its first seed (a row without a healthy run still shows
    what it learnt)."""
    out = {}
    for r in rows(S):
        names = [base.run_name(S.dataset, r, s) for s in S.seeds]
        out[r] = next((n for n in names if _usable(records.get(n))), names[0])
    return out


def paired_differences(ax, table: pd.DataFrame) -> None:
    """Every row's paired difference with ``none`` and its 95 % interval (filled: the verdict's healthy seeds),
    its verdict in the tick label, and where failed seeds finished with a value the same comparison counting them
    (hollow, just below: ``evidence.compare``'s sensitivity columns ``*_all``)."""
    d = table.drop(index=BASELINE)
    y = np.arange(len(d))
    ax.errorbar(d["diff"], y, xerr=[d["diff"] - d["ci_low"], d["ci_high"] - d["diff"]], fmt="o", capsize=3,
                label="healthy seeds (the verdict)")
    if "diff_all" in d and d["diff_all"].notna().any():
        a = d["diff_all"]
        ax.errorbar(a, y + 0.3, xerr=[a - d["ci_low_all"], d["ci_high_all"] - a], fmt="o", mfc="white",
                    color="0.45", capsize=2, lw=0.9, label="counting the failed seeds' values (sensitivity)")
        ax.legend(fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False)
    ax.axvline(0, color="gray", ls="--")
    ax.set_yticks(y, [f"{r} ({v})" for r, v in d["verdict"].items()])
    ax.invert_yaxis()
    ax.set_xlabel(f"test top-1 difference with {BASELINE} (points), paired over seeds, 95 % CI")


# ------------------------------------------------------------------------------------------- localisation
_MEMO: dict[tuple, dict] = {}  # (what, run id, options) -> scores: the notebook's figures and tables share them


def test_split(spec_: RunSpec, **knobs):
    """The test split of a run's data set with its evaluation transform (``knobs``: generator knobs changed)."""
    from fgic.data import build_dataset
    from fgic.data.transforms import build_transform

    tf = build_transform(spec_.transform, train=False, **spec_.transform_kw)
    return build_dataset(spec_.dataset, split="test", transform=tf, **{"seed": 0, **spec_.data_kw, **knobs})


def _usable(rec) -> bool:
    return rec is not None and run_health(rec)[0] and (Record(rec).dir / "final.pt").is_file()


def localisation_scores(S: CrossStudy, records: Mapping[str, object]) -> dict[str, dict[str, float]]:
    """``{run name: fgic.localize scores (and prior_*)}`` of Grad-CAM (true class) on ``S.n_heatmaps`` test images
    per class (class-balanced, seed ``S.seed``), for every healthy run with weights."""
    from fgic import localize
    from fgic.cam import grad_cam
    from fgic.data.subsets import balanced_indices

    out = {}
    for name, rec in records.items():
        if not _usable(rec):
            continue
        key = ("loc", rec["run_id"], S.n_heatmaps, S.seed)
        if key not in _MEMO:
            rec = Record(rec)
            ds = test_split(rec.spec)
            idx = balanced_indices(ds, S.n_heatmaps, seed=S.seed)
            pred = rec.predictor()
            _MEMO[key] = localize.score_heatmap_fn(lambda x, y, p=pred: grad_cam(p, x, y), ds, idx)
        out[name] = _MEMO[key]
    return out


def _with_metrics(records: Mapping[str, object], extra: Mapping[str, dict]) -> dict[str, Record]:
    """Every record, those in ``extra`` copied with its values added to their metrics (for ``evidence.compare``):
    a run left out of ``extra`` (failed, or no weights) keeps its own health reason instead of reading "not run"."""
    return {n: Record({**r, "metrics": {**r["metrics"], **extra[n]}}) if n in extra else r
            for n, r in records.items() if r is not None}


def localisation_table(S: CrossStudy, records: Mapping[str, object]) -> pd.DataFrame:
    """Per row: the mean over seeds of every ``LOC_KEYS`` score, the paired difference of ``LOC_COMPARED`` with
    ``none`` [95 % CI], p and verdict, and the centre prior on the same images as the last row."""
    scores = localisation_scores(S, records)
    cells = base.cells(_with_metrics(records, scores), S.dataset, rows(S), S.seeds)
    t = evidence.compare(cells, BASELINE, metric=LOC_COMPARED, scale=1.0)
    out = pd.DataFrame({k: evidence.compare(cells, metric=k, scale=1.0)["mean"] for k in LOC_KEYS})
    out = out.join(t[["n", "n_paired", "diff", "ci_low", "ci_high", "p", "verdict", "failed"]])
    if scores:
        first = next(iter(scores.values()))  # the same images for every run: one prior
        out.loc[PRIOR] = pd.Series({**{k: first[f"prior_{k}"] for k in LOC_KEYS}, "verdict": "reference"})
    out.attrs["caption"] = (f"Grad-CAM localisation (mean over seeds) on {S.n_heatmaps} test images per class; "
                            f"diff = paired difference of {LOC_COMPARED} with {BASELINE}")
    return out


# ------------------------------------------------------------------------------------------- robustness
def shift_testable(S: CrossStudy) -> str:
    """"" when the shifted test split can be made here, else why not."""
    if not S.shift:
        return "no shift in this profile's settings (shift: {})"
    if S.dataset != BENCHMARK or S.data is not None:
        return "the shift is a knob of the embedded benchmark's generator, not of a real data set"
    return ""


def shifted_accuracy(S: CrossStudy, records: Mapping[str, object]) -> dict[str, dict[str, float]]:
    """``{run name: {"shift_top1", "shift_drop"}}``: top-1 on the shifted test split (``S.shift``) and its
    difference from the run's own clean test top-1 (fractions), for every healthy run with weights."""
    from fgic.experiments.benchmark_tour import correct

    if shift_testable(S):
        return {}
    out = {}
    for name, rec in records.items():
        if not _usable(rec):
            continue
        key = ("shift", rec["run_id"], json.dumps(S.shift, sort_keys=True))
        if key not in _MEMO:
            rec = Record(rec)
            acc = float(correct(rec, test_split(rec.spec, **S.shift)).float().mean())
            _MEMO[key] = {"shift_top1": acc, "shift_drop": acc - float(rec["metrics"]["test_top1"])}
        out[name] = _MEMO[key]
    return out


def robustness_table(S: CrossStudy, records: Mapping[str, object]) -> pd.DataFrame:
    """``evidence.compare`` of the accuracy change (shifted - clean, points; positive = loses less) against ``none``'s,
    paired over seeds, with the clean and shifted means; empty, its caption saying why, where the shift cannot be
    made."""
    why = shift_testable(S)
    if why:
        t = pd.DataFrame(columns=["clean", "shifted", *evidence.COLUMNS])
        t.attrs["caption"] = f"not testable here ({why})"
        return t
    cells = base.cells(_with_metrics(records, shifted_accuracy(S, records)), S.dataset, rows(S), S.seeds)
    t = evidence.compare(cells, BASELINE, metric="shift_drop")
    t.insert(0, "shifted", evidence.compare(cells, metric="shift_top1")["mean"])
    t.insert(0, "clean", evidence.compare(cells)["mean"])
    t.attrs["caption"] = (f"Test top-1 (%) on the shifted split ({', '.join(f'{k} {v}' for k, v in S.shift.items())})"
                          f"; diff = paired difference of the change (shifted - clean top-1) with {BASELINE}'s, "
                          f"points: positive = loses less under the shift (a row with a lower clean top-1 has less "
                          f"to lose)")
    return t


def localisation_conclusions(S: CrossStudy, table: pd.DataFrame) -> list[Conclusion]:
    """One line per row of a ``localisation_table``: its ``LOC_COMPARED`` against ``none``'s and the centre prior."""
    t = table.drop(index=PRIOR, errors="ignore")
    prior = table.loc[PRIOR, LOC_COMPARED] if PRIOR in table.index else math.nan
    out = []
    for row, r in t.iterrows():
        vs_prior = "n/a" if math.isnan(prior) or pd.isna(r[LOC_COMPARED]) else (
            "above" if r[LOC_COMPARED] > prior else "not above")
        head = f"{row}: {LOC_COMPARED} {r[LOC_COMPARED]:.3f} ({vs_prior} the centre prior's {prior:.3f})"
        if row == BASELINE or pd.isna(r["diff"]):
            text = f"{head}." if row == BASELINE else f"{head}; vs {BASELINE}: not compared ({r['verdict']})."
        else:
            text = (f"{head}; vs {BASELINE}: {r['diff']:+.3f} [95 % CI {r['ci_low']:+.3f}, {r['ci_high']:+.3f}], "
                    f"p = {r['p']:.3f}: {r['verdict']}.")
        out.append(Conclusion(f"localisation/{S.dataset}/{row}", text, str(r["verdict"]),
                              *base.row_numbers(t, row)))
    return out


def robustness_conclusions(S: CrossStudy, table: pd.DataFrame) -> list[Conclusion]:
    """One line per compared row of a ``robustness_table`` (the drop against ``none``'s), or why not testable."""
    if table.empty:
        return [Conclusion(f"robustness/{S.dataset}", f"Robustness to the shift: {table.attrs.get('caption', '')}.",
                           "not testable")]
    return base.table_conclusions(f"robustness/{S.dataset}", table, BASELINE,
                                  unit="points of top-1 change under the shift (shifted - clean; positive: loses less)")
