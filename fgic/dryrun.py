"""Dry run of the paper grids: every distinct model / loss / transform of every notebook, a few steps each.

``python -m fgic dry-run [names] --data cub --data-root PATH`` (or ``dry_run(...)``) takes each notebook's
paper-profile grid (the same ``fgic.experiments`` functions the notebooks call), and for every distinct
architecture runs the real code path of ``fgic.runs.train`` in a temporary runs folder:

1. **built**: the model and loss are created through the registries;
2. **data**: the data set is built and one image is read;
3. **step**: one training epoch of ``max_steps`` steps ran (``train(..., stop_after=1)``);
4. **resume**: its checkpoint ``last.pt`` was saved, and a second call resumed from it for epoch 2;
5. **eval**: the final evaluation ran (test top-1 in the record).

What makes it cheap (each change is listed in the report's ``changes`` column):

- no pretrained weights (``pretrained=False``): the weights check is the plan's job (``fgic.plan``);
- a real data set that is absent is replaced by ``--data`` (e.g. ``cub`` with ``--data-root``); the embedded
  benchmark is rendered small; images at ``image_size`` px (64), ``limit_train`` / ``limit_eval`` images;
- 2 epochs of ``max_steps`` = 1 step of 2 images; specs that differ only in seed, data set, GHOLM's mu or the
  weights tag are run once, and (``cover=True``, default) a spec runs only when its network (model, its
  settings, transform, regularizer) or its loss has not run yet: every model and every loss of the grids runs,
  not every model x loss pair (``cover=False``, ``--every-pair``: all pairs);
- ``shrink=True`` (default): the paper's full-size networks get small widths (``SHRINK``) so that the
  ResNet-50s, VGG16s, ConvNeXt-S and ConvNeXt-V2-Large fit a CI machine: same code, fewer channels.
  ``shrink=False`` (``--full-size``) runs them at full size (a GPU or a large machine).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field

from fgic.runs import RunSpec

# notebook -> the fgic.experiments module whose ``grid(S)`` is its grid
EXPERIMENTS = {
    "00_benchmark_tour": "benchmark_tour",
    "01_acanet": "acanet",
    "02_multi_attention": "multi_attention",
    "03_mixed_attention": "mixed_attention",
    "04_gholm_net": "gholm",
    "05_convnextv2_scra": "scra",
    "06_cross_paper_study": "cross_study",
}
NOTEBOOKS = tuple(EXPERIMENTS)

# model-name prefix -> model_kw of a narrow version (the first matching prefix wins)
SHRINK = {
    "acanet18": {"width": 8},
    "resnet18": {"width": 8},
    "study_resnet18": {"width": 8},  # 06's study backbones (any module)
    "study_resnet50": {"layers": [1, 1, 1, 1], "width": 8},
    "resnet50": {"layers": [1, 1, 1, 1], "width": 8},  # 02's and 03's ResNet-50s (resnet50, resnet50_*)
    "vgg16_bn_": {"width": 8},  # 03's VGG16-BN variants (vgg16_bn_*_top)
    "gholm_convnext": {"dims": [8, 16, 32, 64], "depths": [1, 1, 1, 1]},
    "convnextv2_large": {"dims": [8, 16, 32, 64], "depths": [1, 1, 1, 1]},
}
DEDUP_IGNORE = ("mu", "pretrained_tag")  # model_kw keys that change numbers, not the code path
CHECKS = ("built", "data", "step", "resume", "eval")


def grid(notebook: str, overrides=None) -> dict[str, RunSpec]:
    """The paper-profile grid of ``notebook``: ``{run name: RunSpec}``."""
    from fgic import profiles

    S = profiles.settings(notebook, "paper", overrides=overrides or {})
    if notebook not in EXPERIMENTS:
        raise KeyError(f"no paper grid for notebook {notebook!r}; available: {list(NOTEBOOKS)}")
    return importlib.import_module(f"fgic.experiments.{EXPERIMENTS[notebook]}").grid(S)


def _shrink_kw(model: str) -> dict:
    from fgic.models.registry import MODELS

    model = MODELS.entry(model).name if model in MODELS else model  # a former (deprecated) name: its new one
    return next((kw for prefix, kw in SHRINK.items() if model.startswith(prefix)), {})


def dry_spec(
    spec: RunSpec,
    data: str = "cub",
    data_root: str | None = None,
    image_size: int = 64,
    shrink: bool = True,
    steps: int = 1,
    images: int = 4,
) -> tuple[RunSpec, list[str]]:
    """(the cheap version of ``spec``, the list of what was changed, in words)."""
    d = spec.to_dict()
    changes = []
    if d["pretrained"]:
        d["pretrained"] = False
        changes.append("no pretrained weights")
    size = int(d["transform_kw"].get("image_size") or image_size)
    net_size = int(d["model_kw"].get("input_size") or size)  # GHOLM: the network input < the crop source view
    scale = max(1, round(size / net_size))
    d["transform_kw"]["image_size"] = image_size * scale
    if "input_size" in d["model_kw"]:
        d["model_kw"]["input_size"] = image_size
    if d["dataset"] == "synthetic":
        d["data_kw"].update(image_size=image_size * scale, images_per_class=4, test_per_class=2)
        changes.append("small benchmark")
    elif d["dataset"] == data and data_root and not d["data_kw"].get("root"):
        d["data_kw"]["root"] = str(data_root)
    else:
        from fgic.plan import check_data

        if check_data(RunSpec(**d)):  # absent (or unreadable) here
            changes.append(f"{data} for {d['dataset']} (absent)")
            d["dataset"] = data
            d["data_kw"] = {k: v for k, v in d["data_kw"].items() if k != "root"}
            if data_root:
                d["data_kw"]["root"] = str(data_root)
    if shrink and (kw := _shrink_kw(d["model"])):
        d["model_kw"].update(kw)
        changes.append("shrunk " + json.dumps(kw, separators=(",", ":")))
    d["train"].update(
        epochs=2,
        batch_size=2,
        eval_batch_size=images,
        max_steps=steps,
        limit_train=images,
        limit_eval=images,
        num_workers=0,
        devices=1,
        strategy="auto",
        compile=False,
        warmup_epochs=0,
        seed=0,
    )
    d["train"].pop("milestones", None) if d["train"].get("schedule") == "multistep" else None
    return RunSpec(**d), changes


def _keys(spec: RunSpec) -> tuple[str, str]:
    """(network key, loss key) of a cheap spec: what must run at least once."""
    d = spec.to_dict()
    d["model_kw"] = {k: v for k, v in d["model_kw"].items() if k not in DEDUP_IGNORE}
    loss = json.dumps([d.pop("loss"), d.pop("loss_kw")], sort_keys=True)
    for k in ("dataset", "data_kw", "init"):
        d.pop(k)
    return json.dumps(d, sort_keys=True), loss


@dataclass
class Row:
    notebook: str
    name: str
    model: str
    loss: str
    dataset: str
    changes: list[str] = field(default_factory=list)
    checks: dict = field(default_factory=dict)  # check -> True / False / None (not reached)
    seconds: float = 0.0
    error: str = ""

    @property
    def ok(self) -> bool:
        return all(self.checks.get(c) for c in CHECKS)


def check_spec(spec: RunSpec, group: str, row: Row) -> Row:
    """Run the five checks of ``spec`` (the cheap version) under the current runs folder; fill in ``row``."""
    from fgic.losses import create_loss
    from fgic.models import create_model
    from fgic.runs import build_data, run_dir, train

    t0 = time.perf_counter()
    row.checks = dict.fromkeys(CHECKS)
    step = "data"
    try:
        tr, _, _ = build_data(spec)
        tr[0]  # reads one image
        row.checks["data"] = True
        step = "built"
        model = create_model(spec.model, num_classes=len(tr.classes), pretrained=spec.pretrained, **spec.model_kw)
        create_loss(spec.loss, num_classes=len(tr.classes), feat_dim=model.num_features, **spec.loss_kw)
        row.checks["built"] = True
        del model
        step = "step"
        rec = train(spec, group=group, name=row.name, progress=False, stop_after=1)
        row.checks["step"] = len(rec.history) == 1 and rec["status"] == "interrupted"
        step = "resume"
        saved = (run_dir(group, spec.run_id) / "last.pt").is_file()
        rec = train(spec, group=group, name=row.name, progress=False)
        row.checks["resume"] = saved and rec["status"] == "finished" and [h["epoch"] for h in rec.history] == [1, 2]
        row.checks["eval"] = "test_top1" in rec.metrics and rec.metrics.get("test_top5") is not None
    except Exception as e:  # noqa: BLE001 - the failure is the finding: reported in the row
        row.checks[step] = False
        row.error = f"{step}: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    row.seconds = round(time.perf_counter() - t0, 1)
    return row


def dry_run(
    names: list[str] | None = None,
    data: str = "cub",
    data_root: str | None = None,
    image_size: int = 64,
    shrink: bool = True,
    overrides=None,
    progress: bool = True,
    out=sys.stdout,
    cover: bool = True,
) -> list[Row]:
    """Run the checks for every distinct spec of the paper grids of ``names`` (default: all notebooks).

    Real data sets run before the benchmark, so that a network seen on both is checked on real data."""
    import torch
    from tqdm.auto import tqdm

    picked = [n for n in NOTEBOOKS if not names or any(n == x or n.startswith(x) for x in names)]
    unknown = [x for x in names or [] if not any(n == x or n.startswith(x) for n in NOTEBOOKS)]
    if unknown:
        raise KeyError(f"no notebook matches {unknown}; available: {list(NOTEBOOKS)}")
    data_root = data_root or os.environ.get("FGIC_DATA")
    todo: list[tuple[RunSpec, Row]] = []
    nets, losses, pairs = set(), set(), set()
    for nb in picked:
        specs = sorted(grid(nb, overrides).items(), key=lambda kv: kv[1].dataset == "synthetic")  # stable
        for name, spec in specs:
            cheap, changes = dry_spec(spec, data, data_root, image_size, shrink)
            net, loss = _keys(cheap)
            if (net, loss) in pairs or (cover and net in nets and loss in losses):
                continue
            nets.add(net), losses.add(loss), pairs.add((net, loss))
            todo.append((cheap, Row(nb, name, spec.model, spec.loss, cheap.dataset, changes)))
    rows = []
    old_runs, old_dl = os.environ.get("FGIC_RUNS"), os.environ.get("FGIC_ALLOW_DOWNLOAD")
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="fgic-dryrun-") as tmp:
        os.environ["FGIC_RUNS"], os.environ["FGIC_ALLOW_DOWNLOAD"] = tmp, "0"
        try:
            quiet = not progress or os.environ.get("TQDM_DISABLE") == "1"
            for cheap, row in tqdm(todo, desc="dry run", unit="spec", disable=quiet, file=out):
                rows.append(check_spec(cheap, "dryrun", row))
                if not row.ok:
                    tqdm.write(f"  FAIL {row.notebook} {row.name}: {row.error}", file=out)
        finally:
            torch.set_num_threads(threads)
            for k, v in (("FGIC_RUNS", old_runs), ("FGIC_ALLOW_DOWNLOAD", old_dl)):
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return rows


def table(rows: list[Row]):
    """The report: one row per spec with the five checks (a pandas DataFrame)."""
    import pandas as pd

    mark = {True: "ok", False: "FAIL", None: "-"}
    return pd.DataFrame(
        [
            {
                "notebook": r.notebook[:2],
                "run": r.name,
                "model": r.model,
                "loss": r.loss,
                "data": r.dataset,
                **{c: mark[r.checks.get(c)] for c in CHECKS},
                "s": r.seconds,
                "changes": "; ".join(r.changes),
                "error": r.error,
            }
            for r in rows
        ]
    )


def main(args) -> int:
    """``python -m fgic dry-run``: print the table and a summary; exit 1 when any check failed."""
    import pandas as pd

    t0 = time.perf_counter()
    rows = dry_run(
        args.names,
        args.data,
        args.data_root,
        args.image_size,
        not args.full_size,
        args.overrides,
        cover=not getattr(args, "every_pair", False),
    )
    df = table(rows)
    if not any(r.error for r in rows):
        df = df.drop(columns="error")
    with pd.option_context("display.max_rows", None, "display.max_colwidth", 70, "display.width", 250):
        print(df.to_string(index=False))
    failed = [r for r in rows if not r.ok]
    print(
        f"\n{len(rows) - len(failed)} of {len(rows)} specs passed all checks "
        f"({', '.join(CHECKS)}) in {time.perf_counter() - t0:.0f} s"
    )
    return 1 if failed else 0
