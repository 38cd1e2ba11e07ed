"""Typed notebook settings: one dataclass per notebook, loaded and checked from ``params/*.yaml``.

``fgic.profiles.settings("01_acanet", "default")`` merges ``params/profiles.yaml`` and
``params/01_acanet.yaml`` (the profile's section of each), applies overrides and your own data, and builds
the notebook's class from ``NOTEBOOKS`` (here ``ACANet``). Every class derives from ``Settings`` (seed,
profile, the embedded ``Benchmark``, your own data ``data``, real-data ``image_size`` / ``data_kw``) and
adds its own fields, each with a type and a comment saying what it means. Notebooks and
``fgic.experiments`` read attributes: ``S.train["epochs"]``, ``S.benchmark.image_size``, ``S.table2.models``.

What is checked at load: an unknown key, a missing one, or a value of the wrong type raises a
``SettingsError`` (a ``ValueError``) naming the file (or the override), the profile, the key and the type
expected, e.g. ``params/01_acanet.yaml [default]: train.epochs = 'three' is not an int``.

Left as plain dicts, on purpose: builder options keyed by whatever the builder takes (``model_kw``,
``data_kw``, ``loss_kw``), and the training configs (``train`` and ``*_train``): exactly the keys the YAML
gives, so the ``RunSpec`` built from them (and its ``run_id``) does not change. A training config is still
checked against ``fgic.engine.TrainConfig``: its field names, their types and their ranges.

``S.table()`` is a compact table of what matters (data, image size, model widths, schedule, seeds), a
``SettingsTable`` (Markdown in a notebook): the notebooks show it instead of the whole settings object.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from typing import Any, ClassVar, Union


class SettingsError(ValueError):
    """Settings that do not fit the notebook's settings class: names the file or override, the profile, the key
    and what was expected."""


# --------------------------------------------------------------------------------------------- parts
@dataclass(kw_only=True)
class Benchmark:
    """Knobs of the embedded benchmark (``fgic.data.synthetic``): ``build_dataset("synthetic", **b.kw())``."""

    num_classes: int  # bird species
    images_per_class: int  # training + validation images per class (validation: a seeded 10 %)
    test_per_class: int  # test images per class, an independent stream
    image_size: int  # rendered side in px (32-448); also the network input size on the benchmark
    object_scale: float  # bird length / image side
    clutter: float  # background clutter: 0 = plain, 1 = the generator's default
    max_rotation: float | None = None  # largest bird rotation in degrees (None: the generator's 30)

    def kw(self) -> dict[str, Any]:
        """The knobs given (``None`` = the generator's default is left out), as ``build_dataset`` takes them."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(kw_only=True)
class OwnData:
    """Your own data in place of the benchmark (``settings(..., dataset="folder", data_root=...)``)."""

    dataset: str  # registered data set name: "folder", "csv", "cub", ...
    data_kw: dict[str, Any]  # build_dataset options: root, file, and the notebook's data_kw
    image_size: int  # network input size in px


# --------------------------------------------------------------------------------------------- base
@dataclass(kw_only=True)
class Settings:
    """What every notebook's settings have. Set by the loader, not by the YAML: ``notebook``, ``profile``, ``data``."""

    NOTEBOOK: ClassVar[str] = ""  # params/<NOTEBOOK>.yaml
    LOADER_FIELDS: ClassVar[tuple[str, ...]] = ("notebook", "profile", "data")

    notebook: str  # file stem of the notebook, e.g. "01_acanet"
    profile: str  # "smoke" | "default" | "paper"
    seed: int  # the notebook's seed: torch at set-up, the grid's default training seed, seeded subsets
    benchmark: Benchmark  # the embedded benchmark of this profile
    data: OwnData | None = None  # your own data in the benchmark column (None: the benchmark)
    image_size: int | None = None  # input size in px on the real data sets (paper profile; None: benchmark's)
    data_kw: dict[str, Any] = field(default_factory=dict)  # build_dataset options of the real data sets
    # row label -> more training seeds: rows whose difference is under 2 points get 5 (fgic.experiments.base)
    extra_seeds: dict[str, list[int]] = field(default_factory=dict)

    def train_configs(self) -> dict[str, dict]:
        """The training configs of the notebook, ``{"train": {...}, "bench_train": {...}}`` (those set)."""
        return {n: v for n, v in vars(self).items() if is_train_key(n) and v is not None}

    def problems(self) -> list[tuple[str, str]]:
        """Checks beyond types: ``[(key path, message)]``; none by default."""
        return []

    def benchmark_used(self) -> Benchmark:
        """The benchmark the notebook's benchmark column trains on (``benchmark`` unless a notebook changes it)."""
        return self.benchmark

    def table_rows(self) -> dict[str, str]:
        """Rows of ``table()`` a notebook adds or replaces; none by default."""
        return {}

    def table(self) -> SettingsTable:
        """A compact settings table: data, image size, model widths, schedule, seeds (shown in full in a notebook)."""
        rows = SettingsTable(profile=self.profile)
        b = self.benchmark_used()
        if self.data is not None:
            where = self.data.data_kw.get("root") or self.data.data_kw.get("file") or ""
            rows["data"] = f"your data: {self.data.dataset} {where}".rstrip()
            rows["image size"] = f"{self.data.image_size} px"
        else:
            rows["data"] = (f"embedded benchmark: {b.num_classes} classes, {b.images_per_class} train + val and "
                            f"{b.test_per_class} test images per class")
            rows["image size"] = f"{b.image_size} px"
        datasets = getattr(self, "datasets", None)
        if datasets:
            names = datasets.values() if isinstance(datasets, dict) else datasets
            rows["data sets"] = ", ".join(dict.fromkeys(map(str, names)))
        if self.image_size:
            rows["image size"] += f"; real data sets {self.image_size} px"
        for name in ("model", "bench_model"):
            if getattr(self, name, None):
                rows[name.replace("_", " ")] = getattr(self, name)
        for name in ("model_kw", "bench_model_kw"):
            if hasattr(self, name) and getattr(self, name.replace("_kw", ""), True):  # a model of that name is set
                rows[name.replace("model_kw", "widths").replace("_", " ")] = kw_text(getattr(self, name))
        for name, t in self.train_configs().items():
            rows[name.replace("_", " ")] = train_text(t)
        seeds = getattr(self, "seeds", None)
        rows["seeds"] = f"{list(seeds)} (training), {self.seed} (torch, subsets)" if seeds else f"{self.seed}"
        if self.extra_seeds:
            rows["seeds"] += "; more seeds: " + ", ".join(f"{r} {list(v)}" for r, v in self.extra_seeds.items())
        if hasattr(self, "pretrained"):
            rows["pretrained"] = "yes" if self.pretrained else "no (from scratch)"
        rows.update(self.table_rows())
        return rows


class SettingsTable(dict):
    """``{setting: value}`` (both str) shown as a Markdown table in a notebook, aligned text elsewhere; never cut
    short (a DataFrame would cut long values at 50 characters)."""

    def _repr_markdown_(self) -> str:
        return "| setting | value |\n|---|---|\n" + "".join(
            f"| {k} | {str(v).replace('|', chr(92) + '|')} |\n" for k, v in self.items()
        )

    def __repr__(self) -> str:
        width = max(map(len, self), default=0)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.items())

    def to_frame(self):
        """The table as a pandas DataFrame (index: setting)."""
        import pandas as pd

        return pd.DataFrame({"value": list(self.values())}, index=pd.Index(list(self), name="setting"))


def kw_text(kw: dict) -> str:
    """``{"resnet18": {"width": 8}}`` -> ``"resnet18: width 8"``; ``{}`` -> ``"full size"``."""
    if not kw:
        return "full size"
    if all(isinstance(v, dict) for v in kw.values()):
        return "; ".join(f"{k}: {kw_text(v)}" for k, v in kw.items())
    return ", ".join(f"{k} {v}" for k, v in kw.items())


def train_text(t: dict) -> str:
    """One training config in a line: ``"3 epochs, batch 32, sgd lr 0.05, cosine"``."""
    from fgic.engine import TrainConfig

    d = TrainConfig()
    parts = [f"{t.get('epochs', d.epochs)} epochs", f"batch {t.get('batch_size', d.batch_size)}",
             f"{t.get('optimizer', d.optimizer)} lr {t.get('lr', d.lr)}", t.get("schedule", d.schedule)]
    parts += [f"{k} {t[k]}" for k in ("max_steps", "limit_train", "limit_eval") if t.get(k)]
    return ", ".join(map(str, parts))


def is_train_key(name: str) -> bool:
    """Whether a settings key is a training config (``train`` or ``*_train``: a dict of TrainConfig fields)."""
    return name == "train" or name.endswith("_train")


# --------------------------------------------------------------------------------------------- 00
@dataclass(kw_only=True)
class BenchmarkTour(Settings):
    """Notebook 00: the embedded benchmark and a ResNet18 baseline."""

    NOTEBOOK: ClassVar[str] = "00_benchmark_tour"

    model_kw: dict[str, Any] = field(default_factory=dict)  # ResNet18 options (width: first stage's channels)
    train: dict[str, Any]  # TrainConfig fields of the baseline run
    n_heatmaps: int  # test images scored with Grad-CAM
    seeds: list[int]  # training seeds of the baseline (one run each; tables pair and summarise over them)


# --------------------------------------------------------------------------------------------- 01
@dataclass(kw_only=True)
class Table2:
    """ACANet Table 2: a model x loss grid."""

    models: list[str]  # registry names (or ACANet VARIANTS names)
    losses: list[str]  # loss registry names


@dataclass(kw_only=True)
class Table3:
    """ACANet Table 3: backbones under cross-entropy."""

    models: list[str]  # registry names


@dataclass(kw_only=True)
class Ablation:
    """ACANet Table 4: the ablation grid."""

    models: list[str]  # registry names (or ACANet VARIANTS names)
    losses: list[str]  # loss registry names
    datasets: list[str]  # columns: "benchmark" (the embedded benchmark or your data) or registry names
    seeds: list[int] | None = None  # training seeds of Table 4 when they differ from ``seeds`` (None: ``seeds``)


@dataclass(kw_only=True)
class InferTiming:
    """CPU inference timing of the re-parameterisation section."""

    batch: int  # images per timed batch
    repeats: int  # timed batches per round
    warmup: int  # untimed batches first
    rounds: int  # interleaved rounds (the best median is kept)


@dataclass(kw_only=True)
class ACANet(Settings):
    """Notebook 01: ACANet (Tan & Xu), Tables 2-4, Figs. 8-9."""

    NOTEBOOK: ClassVar[str] = "01_acanet"

    datasets: list[str]  # Tables 2-3 columns: "benchmark" (the embedded benchmark or your data) or registry names
    seeds: list[int]  # training seeds of every compared row (Table 4: ``table4.seeds`` when set)
    transform: str  # transform preset of every run
    train: dict[str, Any]  # TrainConfig fields of every run
    model_kw: dict[str, dict[str, Any]] = field(default_factory=dict)  # per registry name (missing: defaults)
    loss_kw: dict[str, dict[str, Any]] = field(default_factory=dict)  # per loss name (missing: defaults)
    table2: Table2  # Table 2's model x loss grid
    table3: Table3  # Table 3's backbones (CE)
    table4: Ablation  # Table 4's ablation grid
    infer: InferTiming  # inference timing
    fuse_images: int  # test images compared unfused vs fused
    val_fraction: float | None = None  # validation share of the real training split (None: the loader's 10 %)

    def table4_seeds(self) -> list[int]:
        """The training seeds of Table 4: ``table4.seeds`` when set, else ``seeds``."""
        return list(self.seeds if self.table4.seeds is None else self.table4.seeds)

    def table_rows(self) -> dict[str, str]:
        t4, seeds, n = self.table4, self.table4_seeds(), len(self.seeds)
        rows = {}
        if seeds != list(self.seeds):  # the paper profile: more seeds in Table 4
            rows["seeds"] = f"{list(self.seeds)} (Tables 2-3), {seeds} (Table 4), {self.seed} (torch, subsets)"
        rows["grid"] = (f"Table 2 {len(self.table2.models)} models x {len(self.table2.losses)} losses x {n} seed(s), "
                        f"Table 3 {len(self.table3.models)} backbones x {n}, Table 4 {len(t4.models)} models x "
                        f"{len(t4.losses)} losses x {len(seeds)}")
        return rows


# --------------------------------------------------------------------------------------------- 02
@dataclass(kw_only=True)
class MultiAttention(Settings):
    """Notebook 02: multi-attention fusion (Du & Ma), Table 1."""

    NOTEBOOK: ClassVar[str] = "02_multi_attention"

    datasets: list[str]  # data sets to run: "benchmark" or registry names of experiments.multi_attention.DATASETS
    models: list[str] | None = None  # Table 1 rows: labels of experiments.multi_attention.MODELS (None: all)
    model_kw: dict[str, Any] = field(default_factory=dict)  # ResNet50 trunk options of every model (layers, width)
    transform: str  # transform preset
    train: dict[str, Any]  # TrainConfig fields of every run (the seed comes from seeds)
    seeds: list[int]  # training seeds of every row (the tables pair rows over them)
    pretrained: bool = False  # ImageNet weights
    n_heatmaps: int  # test images scored for localisation
    n_show: int  # test images in the heatmap grid
    attn_stage: int  # layer (1-4) whose last block's spatial map is drawn
    val_fraction: float | None = None  # validation share of the real training split (None: the loader's 10 %)


# --------------------------------------------------------------------------------------------- 03
@dataclass(kw_only=True)
class MixedAttention(Settings):
    """Notebook 03: mixed attention for small samples (Li et al.), Tables I-II."""

    NOTEBOOK: ClassVar[str] = "03_mixed_attention"

    datasets: list[str]  # Table II columns to run: labels of experiments.mixed_attention.DATASETS or "benchmark"
    backbones: list[str]  # labels of experiments.mixed_attention.BACKBONES
    variants: list[str] | None = None  # labels of experiments.mixed_attention.VARIANTS (None: all)
    seeds: list[int]  # training seeds per cell
    small_sample: dict[str, Any] = field(default_factory=dict)  # benchmark knobs replaced here (images_per_class)
    model_kw: dict[str, dict[str, Any]] = field(default_factory=dict)  # per backbone prefix: vgg16_bn, resnet50
    transform: str  # transform preset
    attention_lr: float  # learning rate of the attention modules
    backbone_lr: float  # learning rate of the rest (backbone and head)
    train: dict[str, Any]  # TrainConfig fields of every run (lr and param_groups come from the two above)
    pretrained: bool = False  # ImageNet weights
    n_heatmaps: int  # test images scored for localisation
    n_show: int  # test images in the Fig. 3 grid
    val_fraction: float | None = None  # validation share of the real training split (None: the loader's 10 %)

    def small_benchmark(self) -> Benchmark:
        """The benchmark with the small-sample knobs: what the benchmark column trains on."""
        return replace(self.benchmark, **self.small_sample)

    def benchmark_used(self) -> Benchmark:
        return self.small_benchmark()

    def table_rows(self) -> dict[str, str]:
        return {"train": train_text({**self.train, "lr": self.backbone_lr}) + f"; attention lr {self.attention_lr}"}

    def problems(self) -> list[tuple[str, str]]:
        knobs = {f.name for f in fields(Benchmark)}
        return [(f"small_sample.{k}", f"is not a benchmark knob ({', '.join(sorted(knobs))})")
                for k in self.small_sample if k not in knobs]


# --------------------------------------------------------------------------------------------- 04
@dataclass(kw_only=True)
class GHOLM(Settings):
    """Notebook 04: GHOLM-Net (Zheng & Wang), Tables 2-9. ``bench_*``: the benchmark; the rest: real data sets."""

    NOTEBOOK: ClassVar[str] = "04_gholm_net"

    bench_model: str  # registry name of the benchmark's network
    bench_model_kw: dict[str, Any] = field(default_factory=dict)  # its options (width, dims, ...)
    bench_transform: str  # transform preset on the benchmark
    bench_source_scale: int = 1  # the benchmark is rendered at this x the input size (the crop's source)
    bench_train: dict[str, Any]  # TrainConfig fields of the benchmark runs
    seeds: list[int]  # seeds of every benchmark run (ablation, mu, object scale; your data in its place)
    real_seeds: list[int] = field(default_factory=lambda: [0])  # seeds of every run on the real data sets
    mu_values: list[float] = field(default_factory=list)  # crop threshold factors trained on the benchmark
    mu_eval: list[float]  # mu applied at test time to the full model
    object_scales: list[float] = field(default_factory=list)  # bird sizes of the object-scale grid
    n_eval: int  # test images of the test-time evaluations (class-balanced)
    n_coverage: int  # test images whose crop box is scored
    n_fig6: int  # images in the Fig. 6 grid
    bench_iters: int  # timed steps per model in fgic.bench.gholm
    bench_warmup: int  # untimed steps per model
    model: str | None = None  # registry name of the network on the real data sets
    model_kw: dict[str, Any] = field(default_factory=dict)  # its options
    pretrained: bool = False  # pretrained weights on the real data sets
    pretrained_tags: dict[str, str] = field(default_factory=dict)  # timm weight set per data set
    source_scale: int = 1  # real data: the crop's source view is this x the input size
    transform: str | None = None  # transform preset on the real data sets
    train: dict[str, Any] | None = None  # TrainConfig fields on the real data sets
    datasets: dict[str, str] = field(default_factory=dict)  # table ("table2" ... "table9") -> real data set

    def table_rows(self) -> dict[str, str]:
        real = f", {list(self.real_seeds)} (real data sets)" if self.datasets else ""
        return {"seeds": f"{list(self.seeds)} (benchmark){real}, {self.seed} (torch, subsets)"}


# --------------------------------------------------------------------------------------------- 05
@dataclass(kw_only=True)
class SCRA(Settings):
    """Notebook 05: ConvNeXt-V2 + SCR-Attention (Thushara et al.), Table 1."""

    NOTEBOOK: ClassVar[str] = "05_convnextv2_scra"

    model: str  # timm ConvNeXt-V2 registry name (``_scra`` is appended for SCRA rows)
    model_kw: dict[str, Any] = field(default_factory=dict)  # its options (dims, depths)
    pretrained: bool = False  # ImageNet-22k weights
    datasets: list[str]  # columns to run: keys of experiments.scra.DATASETS or "benchmark"
    only_printed: bool = True  # on real data sets, only the cells Table 1 prints
    rows: list[str] | None = None  # keys of experiments.scra.ROWS (None: all)
    seeds: list[int]  # training seeds per row
    baseline_transform: str  # transform preset without augmentation
    transform: str  # the augmentation preset
    drop_rate: float  # dropout before the classifier
    l2sp_lam: float  # L2-SP lambda
    train: dict[str, Any]  # TrainConfig fields of every run
    large_size: int  # input size of the ConvNeXt-V2 Large complexity count
    large_heads: list[str]  # data sets whose head the Large count uses
    n_heatmaps: int  # test images scored with Grad-CAM / the SCRA gate


# --------------------------------------------------------------------------------------------- 06
@dataclass(kw_only=True)
class CostTiming:
    """How notebook 06 times every network in one process (``fgic.experiments.cross_study.cost_table``)."""

    batch: int  # images per timed batch (inference and training)
    repeats: int  # timed batches per network (the median is kept)
    warmup: int  # untimed batches first
    threads: int  # torch intra-op threads while timing (0: leave the process's count)


@dataclass(kw_only=True)
class CrossStudy(Settings):
    """Notebook 06: every study module of the five papers on one backbone, one recipe (``fgic.models.study``)."""

    NOTEBOOK: ClassVar[str] = "06_cross_paper_study"

    model: str  # the study backbone: "study_resnet18" | "study_resnet50"
    model_kw: dict[str, Any] = field(default_factory=dict)  # its options (width, layers, output_stride)
    modules: list[str] | str = "all"  # rows: "all" = every registered study module, or a list of names
    module_kw: dict[str, dict[str, Any]] = field(default_factory=dict)  # per module: its options (none: defaults)
    dataset: str = "benchmark"  # "benchmark" (the embedded benchmark, or your data) or a registered data set
    pretrained: bool = False  # ImageNet weights for the trunk (the modules start new)
    transform: str  # transform preset of every run
    train: dict[str, Any]  # TrainConfig fields of every run (the seed comes from seeds)
    seeds: list[int]  # training seeds of every row (the tables pair rows over them)
    loss: str | None = None  # the loss row: notebook 01's best loss on the plain backbone (None: no such row)
    loss_kw: dict[str, Any] = field(default_factory=dict)  # its options
    gholm_model: str | None = None  # GHOLM's crop / erase branches + SupCon on the plain backbone (None: not run)
    gholm_kw: dict[str, Any] = field(default_factory=dict)  # its GHOLMNet switches (mu, drop_weight, ...)
    gholm_why: str = "no GHOLM-Net on this backbone"  # why the GHOLM row is not run when gholm_model is None
    val_fraction: float | None = None  # validation share of the real training split (None: the loader's 10 %)
    n_heatmaps: int  # test images per class scored with Grad-CAM (class-balanced, seeded)
    n_show: int  # test images in the heatmap grid (one per class)
    shift: dict[str, Any] = field(default_factory=dict)  # benchmark knobs of the shifted test split ({}: none)
    cost: CostTiming  # how the cost table times the networks

    def table_rows(self) -> dict[str, str]:
        mods = "every registered study module" if self.modules == "all" else ", ".join(self.modules)
        extra = [f"loss row: {self.loss}" if self.loss else "", f"GHOLM: {self.gholm_model}" if self.gholm_model
                 else f"GHOLM: not run ({self.gholm_why})"]
        shift = ", ".join(f"{k} {v}" for k, v in self.shift.items()) or "none"
        return {"rows": f"{self.model}: {mods}; " + "; ".join(e for e in extra if e),
                "shifted test split": shift,
                "cost timing": f"batch {self.cost.batch}, {self.cost.repeats} timed batches, "
                               f"{self.cost.threads or 'all'} thread(s)"}

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if isinstance(self.modules, str) and self.modules != "all":
            out.append(("modules", f"= {self.modules!r}: write all or a list of study module names"))
        knobs = {f.name for f in fields(Benchmark)} | {"scale_range"}
        out += [(f"shift.{k}", f"is not a benchmark knob ({', '.join(sorted(knobs))})") for k in self.shift
                if k not in knobs]
        if self.dataset != "benchmark" and not self.image_size:
            out.append(("image_size", "is missing (the input size in px on a real data set)"))
        return out


# --------------------------------------------------------------------------------------------- 07
@dataclass(kw_only=True)
class Cub100Study(Settings):
    """Notebook 07: a CPU-sized study on real CUB images (the 100-class subset ``cub100``, a class subset of it)."""

    NOTEBOOK: ClassVar[str] = "07_cub100_cpu_study"
    ROW_KEYS: ClassVar[tuple[str, ...]] = ("model", "model_kw", "baseline")

    dataset: str  # registered data set the classes are taken from ("cub": root from DATA_ROOT / $FGIC_DATA)
    num_classes: int  # train and test on its first K classes (fgic.data.first_classes); chance = 1 / K
    transform: str  # transform preset of every run
    rows: dict[str, dict[str, Any]]  # row label -> {model: registry name, model_kw: {...}, baseline: row label}
    seeds: list[int]  # training seeds per row
    train: dict[str, Any]  # TrainConfig fields of every run (threads: pinned intra-op threads, part of the run id)
    n_show: int = 8  # test images predicted in "Try it"
    retrain_committed: bool = False  # data here, committed records without weights: retrain (True) or show them

    def table_rows(self) -> dict[str, str]:
        return {"data": f"{self.dataset}: its first {self.num_classes} classes (chance {1 / self.num_classes:.1%})",
                "image size": f"{self.image_size} px",
                "weights": "none: every network from scratch",
                "threads": f"{self.train.get('threads', 0) or 'all'} intra-op thread(s)/run (pinned, in the run id)",
                "evaluation": f"val + test every {self.train.get('eval_every', 1)} epoch(s) and after the last",
                "rows": "; ".join(f"{k}: {v.get('model')} {kw_text(v.get('model_kw') or {})}"
                                  + (f" (vs {v['baseline']})" if v.get("baseline") else "")
                                  for k, v in self.rows.items())}

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.num_classes < 2:
            out.append(("num_classes", f"= {self.num_classes} must be at least 2"))
        if not self.image_size:
            out.append(("image_size", "is missing (the input size in px)"))
        for label, row in self.rows.items():
            for k in row:
                if k not in self.ROW_KEYS:
                    out.append((f"rows.{label}.{k}", f"is not a row key ({', '.join(self.ROW_KEYS)})"))
            if not isinstance(row.get("model"), str):
                out.append((f"rows.{label}.model", "is missing (a registered model name)"))
            if not isinstance(row.get("model_kw", {}), dict):
                out.append((f"rows.{label}.model_kw", "is not a mapping"))
            if row.get("baseline") is not None and row["baseline"] not in self.rows:
                out.append((f"rows.{label}.baseline", f"= {row['baseline']!r} is not a row ({', '.join(self.rows)})"))
        return out


NOTEBOOKS: dict[str, type[Settings]] = {
    c.NOTEBOOK: c
    for c in (BenchmarkTour, ACANet, MultiAttention, MixedAttention, GHOLM, SCRA, CrossStudy, Cub100Study)
}


def settings_class(notebook: str) -> type[Settings]:
    if notebook not in NOTEBOOKS:
        raise SettingsError(f"no settings for notebook {notebook!r}; known: {list(NOTEBOOKS)}")
    return NOTEBOOKS[notebook]


def yaml_keys(cls: type[Settings]) -> list[str]:
    """The keys ``cls`` reads from the YAML files (and overrides)."""
    return [f.name for f in fields(cls) if f.name not in cls.LOADER_FIELDS]


# --------------------------------------------------------------------------------------------- checking
def describe(tp) -> str:
    """``int`` -> "an int", ``list[str]`` -> "a list of str", ``int | None`` -> "an int or null"."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "anything"
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else describe(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {_name(args[0])}"
    if origin is dict:
        return f"a mapping of {_name(args[0])} to {_name(args[1])}"
    if is_dataclass(tp):
        return f"a mapping with keys {', '.join(f.name for f in fields(tp))}"
    return {int: "an int", float: "a float", str: "a str", bool: "a bool (true / false)"}.get(tp, _name(tp))


def _name(tp) -> str:
    if tp is Any:
        return "anything"
    if typing.get_origin(tp) or is_dataclass(tp):
        return describe(tp).removeprefix("a ").removeprefix("an ")
    return getattr(tp, "__name__", str(tp))


class _Checker:
    """Builds a dataclass from a nested dict, raising one ``SettingsError`` on the first problem.

    ``where(path)`` names the source of a key path (a file and profile, or an override) for the message."""

    def __init__(self, where):
        self.where = where

    def fail(self, path: tuple, msg: str):
        raise SettingsError(f"{self.where(path)}: {'.'.join(map(str, path))} {msg}")

    def value(self, v, tp, path: tuple):
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is Any:
            return v
        if origin in (Union, types.UnionType):
            if v is None and type(None) in args:
                return None
            for a in args:
                if a is not type(None) and _fits(v, a):
                    return self.value(v, a, path)
            return self.bad(v, tp, path)
        if is_dataclass(tp):
            if not isinstance(v, dict):
                return self.bad(v, tp, path)
            return self.build(tp, v, path)
        if origin in (list, tuple):
            if not isinstance(v, list | tuple):
                return self.bad(v, tp, path)
            return [self.value(x, args[0], (*path[:-1], f"{path[-1]}[{i}]")) for i, x in enumerate(v)]
        if origin is dict:
            if not isinstance(v, dict):
                return self.bad(v, tp, path)
            for k in v:
                if not _fits(k, args[0]):
                    self.fail((*path, k), f"(a key) is not {describe(args[0])}")
            return {k: self.value(x, args[1], (*path, k)) for k, x in v.items()}
        if not _fits(v, tp):
            return self.bad(v, tp, path)
        return v

    def bad(self, v, tp, path):
        hint = ""
        if isinstance(v, str) and tp in (int, float) and _looks_like_number(v):
            hint = " (YAML reads 1e-4 as a string: write 1.0e-4)" if "e" in v.lower() else " (drop the quotes)"
        self.fail(path, f"= {v!r} is not {describe(tp)}{hint}")

    def build(self, cls, d: dict, path: tuple = (), skip=()):
        hints = typing.get_type_hints(cls)
        known = [f.name for f in fields(cls) if f.name not in skip]
        for k in d:
            if k not in known:
                close = difflib.get_close_matches(str(k), known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.fail((*path, k), f"is not a key of {cls.__name__} settings: {hint}known: {', '.join(known)}")
        kw = {}
        for f in fields(cls):
            if f.name in d:
                kw[f.name] = self.value(d[f.name], hints[f.name], (*path, f.name))
            elif f.name not in skip and f.default is MISSING and f.default_factory is MISSING:
                self.fail((*path, f.name), f"is missing ({describe(hints[f.name])})")
        return kw if skip else cls(**kw)

    def train(self, d: dict, path: tuple):
        """A training config: TrainConfig's field names and types, then its own range checks."""
        from fgic.engine import ConfigError, TrainConfig

        hints = typing.get_type_hints(TrainConfig)
        self.value(d, dict[str, Any], path)
        for k, v in d.items():
            if k not in hints:
                close = difflib.get_close_matches(str(k), list(hints), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.fail((*path, k), f"is not a TrainConfig field: {hint}known: {', '.join(hints)}")
            self.value(v, hints[k], (*path, k))
        try:
            TrainConfig.from_dict(d)
        except (ConfigError, TypeError, ValueError) as e:
            name = next((k for k in d if f"TrainConfig.{k}=" in str(e) or f" {k} " in str(e)), None)
            self.fail((*path, name) if name else path, f"is not a valid training config: {e}")


def _fits(v, tp) -> bool:
    """A shallow type test (containers: the container only)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_fits(v, a) for a in typing.get_args(tp))
    if tp is type(None):
        return v is None
    if origin in (list, tuple):
        return isinstance(v, list | tuple)
    if origin is dict or is_dataclass(tp):
        return isinstance(v, dict)
    if tp is bool:
        return isinstance(v, bool)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if tp is float:  # an int is a float here (1 is read as 1, not 1.0: run ids stay as the YAML wrote them)
        return isinstance(v, int | float) and not isinstance(v, bool)
    return isinstance(v, tp)


def _looks_like_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def build(cls: type[Settings], raw: dict, where, loader: dict) -> Settings:
    """``cls`` from the merged YAML dict ``raw`` (after overrides) and the loader's fields ``loader``
    (notebook, profile, data). ``where(path)`` names a key path's source for error messages."""
    check = _Checker(where)
    if "benchmark" not in raw:
        check.fail(("benchmark",), f"is missing ({describe(Benchmark)})")
    kw = check.build(cls, raw, skip=cls.LOADER_FIELDS)
    for name, v in kw.items():
        if is_train_key(name) and v is not None:
            check.train(v, (name,))
    S = cls(**kw, **loader)
    for path, msg in S.problems():
        check.fail(tuple(path.split(".")), msg)
    return S
