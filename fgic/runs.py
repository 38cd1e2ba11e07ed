"""Run records: every number a notebook shows comes from a record written by the run that produced it.

A ``RunSpec`` is plain data (strings, numbers, dicts) naming the model, loss, data set, transform and
training config; its hash is the ``run_id``. ``train(spec, group=...)`` builds everything through the
registries, trains with ``fgic.engine.fit`` and leaves, under ``runs/<group>/<run_id>/``:

- ``record.json``: params, seed, git commit (and whether the tree was dirty), a hash of the fgic
  sources, package versions, device and precision, per-epoch history, final metrics, wall time, status;
- ``last.pt``: the checkpoint after the latest epoch (resume continues from it exactly);
- ``final.pt``: the trained model (and loss) weights, loaded with ``weights_only=True``.

Calling ``train`` again with the same spec finds the finished run and returns its record instead of
retraining (``retrain=True`` forces a new run). A run interrupted part-way resumes from ``last.pt``.
Everything is built before any file is written, so a bad spec leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from fgic.engine import TrainConfig, fit, save_atomic
from fgic.paths import runs_dir


@dataclass
class RunSpec:
    """Everything that defines a run, as plain data (so it hashes, prints and round-trips through JSON)."""

    model: str  # registered model name, e.g. "acanet18"
    dataset: str = "synthetic"  # registered data set name
    loss: str = "ce"  # registered loss name
    model_kw: dict = field(default_factory=dict)  # extra create_model kwargs (width, mu, drop_rate, ...)
    loss_kw: dict = field(default_factory=dict)  # extra create_loss kwargs
    data_kw: dict = field(default_factory=dict)  # extra build_dataset kwargs (root, knobs of the benchmark)
    transform: str = "plain"  # transform preset (fgic.data.transforms)
    transform_kw: dict = field(default_factory=dict)  # e.g. {"image_size": 64}
    train: dict = field(default_factory=dict)  # TrainConfig fields that differ from the defaults
    regularizer: dict | None = None  # e.g. {"name": "l2sp", "lam": 0.01}
    pretrained: bool | str = False  # passed to create_model
    init: str = ""  # "run:<run id or folder>" or "file:<state dict>": start from those weights (fgic.finetune)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), sort_keys=True))

    @property
    def run_id(self) -> str:
        d = self.to_dict()
        if not d["init"]:
            del d["init"]  # a field added later hashes only when set, so earlier run ids stay valid
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.train)


class Record(dict):
    """A run record (a dict, as stored in record.json) with conveniences."""

    @property
    def run_id(self) -> str:
        return self["run_id"]

    @property
    def history(self) -> list[dict]:
        return self.get("history", [])

    @property
    def metrics(self) -> dict:
        return self.get("metrics", {})

    @property
    def spec(self) -> RunSpec:
        return RunSpec(**self["params"])

    @property
    def dir(self) -> Path:
        return Path(self["dir"])

    def load_model(self, map_location: str = "cpu") -> nn.Module:
        """Rebuild the trained model from ``final.pt`` (eval mode). To predict, use ``predictor()``: a
        margin-loss run (CosFace, LGM, ...) keeps its classifier in the loss, and this model's ``fc`` is untrained."""
        from fgic.models import create_model

        spec = self.spec
        model = create_model(spec.model, num_classes=self["num_classes"], **spec.model_kw)
        state = torch.load(self.dir / "final.pt", map_location=map_location, weights_only=True)
        model.load_state_dict(state["model"])
        return model.eval()

    def predictor(self, device: str = "cpu"):
        """The run's ``fgic.predict.Predictor`` (model + loss head): use it, not ``load_model``, to predict."""
        from fgic.predict import Predictor

        return Predictor.from_record(self, device=device)

    def load_criterion(self) -> nn.Module:
        from fgic.losses import create_loss

        spec = self.spec
        crit = create_loss(spec.loss, num_classes=self["num_classes"], feat_dim=self["feat_dim"], **spec.loss_kw)
        crit.load_state_dict(torch.load(self.dir / "final.pt", map_location="cpu", weights_only=True)["criterion"])
        return crit.eval()


# ----------------------------------------------------------------------------- provenance


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=Path(__file__).parent)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance() -> dict:
    """Commit, dirty flag, fgic source hash and package versions of this process."""
    import numpy
    import timm
    import torchvision

    import fgic

    src = Path(fgic.__file__).parent
    h = hashlib.sha1()
    for p in sorted(src.rglob("*.py")):
        h.update(p.relative_to(src).as_posix().encode())
        h.update(p.read_bytes())
    return {
        "commit": _git("rev-parse", "--short=12", "HEAD") or "unknown",
        "dirty": bool(_git("status", "--porcelain", "--", str(src))),
        "code_hash": h.hexdigest()[:12],
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "timm": timm.__version__,
            "numpy": numpy.__version__,
            "fgic": fgic.__version__,
        },
    }


def _write_json(obj: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- building and training


def build_data(spec: RunSpec) -> tuple:
    """(train, val, test) data sets with the spec's train / eval transforms."""
    from fgic.data import build_dataset
    from fgic.data.transforms import build_transform

    tr = build_transform(spec.transform, train=True, **spec.transform_kw)
    ev = build_transform(spec.transform, train=False, **spec.transform_kw)
    kw = {"seed": 0, **spec.data_kw}  # the data and its val split stay fixed across training seeds
    return tuple(
        build_dataset(spec.dataset, split=s, transform=t, **kw) for s, t in (("train", tr), ("val", ev), ("test", ev))
    )


def build_regularizer(spec: RunSpec, model: nn.Module):
    if not spec.regularizer:
        return None
    kw = dict(spec.regularizer)
    name = kw.pop("name")
    if name == "l2sp":
        from fgic.regularizers import L2SP

        return L2SP(model, **kw)
    raise KeyError(f"unknown regularizer {name!r}; available: ['l2sp']")


def build(spec: RunSpec) -> tuple:
    """(model, criterion, train, val, test, regularizer): everything a run needs, built from the spec."""
    from fgic.losses import create_loss
    from fgic.models import create_model

    cfg = spec.config  # validates the training keys first
    train_ds, val_ds, test_ds = build_data(spec)
    num_classes = len(train_ds.classes)
    torch.manual_seed(cfg.seed)  # model and loss initialisation
    model = create_model(spec.model, num_classes=num_classes, pretrained=spec.pretrained, **spec.model_kw)
    criterion = create_loss(spec.loss, num_classes=num_classes, feat_dim=model.num_features, **spec.loss_kw)
    if spec.init:
        from fgic.finetune import initialize

        initialize(model, criterion, spec.init, classes=list(train_ds.classes))
    return model, criterion, train_ds, val_ds, test_ds, build_regularizer(spec, model)


def find(spec: RunSpec, group: str) -> Record | None:
    """The finished record for ``spec`` in ``group``, or None."""
    d = runs_dir() / group / spec.run_id
    if (d / "record.json").is_file() and (d / "final.pt").is_file():
        rec = Record(json.loads((d / "record.json").read_text()))
        if rec.get("status") == "finished":
            rec["dir"] = str(d)
            return rec
    return None


def train(
    spec: RunSpec,
    group: str = "default",
    name: str = "",
    retrain: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> Record:
    """Train ``spec`` (or return its finished record) under ``runs/<group>/<run_id>/``.

    ``stop_after``: stop after that many epochs in this call, leaving a resumable run (for tests).
    """
    found = None if retrain else find(spec, group)
    prov = provenance()
    if found is not None:
        if found.get("code_hash") != prov["code_hash"]:
            print(
                f"note: run {spec.run_id} ({name or spec.model}) was made by fgic code {found.get('code_hash')} "
                f"(commit {found.get('commit')}); the code is now {prov['code_hash']}. Pass retrain=True to refresh it."
            )
        return found

    model, criterion, train_ds, val_ds, test_ds, reg = build(spec)  # raises before anything is written
    d = runs_dir() / group / spec.run_id
    if retrain and d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)
    earlier = json.loads((d / "record.json").read_text()) if (d / "last.pt").is_file() else {}
    rec = Record(
        run_id=spec.run_id,
        name=name or f"{spec.model}-{spec.loss}",
        group=group,
        params=spec.to_dict(),
        seed=spec.config.seed,
        status="running",
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        num_classes=len(train_ds.classes),
        classes=list(train_ds.classes),
        feat_dim=model.num_features,
        num_params=sum(p.numel() for p in model.parameters()),
        sizes={"train": len(train_ds), "val": len(val_ds), "test": len(test_ds)},
        dir=str(d),
        **prov,
    )
    _write_json(rec, d / "record.json")
    live = list(earlier.get("history", []))  # the record on disk grows epoch by epoch while training
    t0 = time.perf_counter()
    try:
        result = fit(
            model,
            criterion,
            train_ds,
            val_ds,
            test_ds,
            spec.config,
            regularizer=reg,
            checkpoint=d / "last.pt",
            resume=True,
            stop_after=stop_after,
            progress=progress,
            on_epoch=lambda row: _write_json({**rec, "history": live.append(row) or live}, d / "record.json"),
        )
    except BaseException as e:
        rec.update(
            status="failed" if not isinstance(e, KeyboardInterrupt) else "interrupted", error=f"{type(e).__name__}: {e}"
        )
        _write_json(rec, d / "record.json")
        raise
    rec.update(
        history=result["history"],
        device=result["device"],
        precision=result["precision"],
        world_size=result["world_size"],
    )
    rec["wall_time"] = earlier.get("wall_time", 0.0) + time.perf_counter() - t0  # summed over resumes
    if not result["finished"]:
        rec["status"] = "interrupted"  # resumable from last.pt
        _write_json(rec, d / "record.json")
        return rec
    rec.update(status="finished", metrics=result["metrics"], finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    save_atomic({"model": model.state_dict(), "criterion": criterion.state_dict()}, d / "final.pt")
    _write_json(rec, d / "record.json")
    return rec


def summary(records: list[Record]):
    """One row per run: id, name, val / test top-1, epochs, wall time (a pandas DataFrame)."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "run": r.run_id,
                "name": r["name"],
                "val_top1": r.metrics.get("val_top1"),
                "test_top1": r.metrics.get("test_top1"),
                "epochs": len(r.history),
                "seconds": round(r.get("wall_time", 0.0), 1),
                "commit": r.get("commit"),
            }
            for r in records
        ]
    )


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ["TQDM_DISABLE"] = "1"


def _train_in_worker(spec_dict: dict, group: str, name: str, retrain: bool, runs_root: str) -> str:
    os.environ["FGIC_RUNS"] = runs_root
    return train(RunSpec(**spec_dict), group=group, name=name, retrain=retrain, progress=False).run_id


def train_many(
    specs: list[RunSpec],
    group: str = "default",
    names: list[str] | None = None,
    retrain: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> list[Record]:
    """Train several specs (finished ones are reused) and return their records in order.

    ``workers`` > 1 trains that many runs side by side in spawned processes with
    ``torch.get_num_threads() // workers`` threads each: on a CPU, small networks train faster this way
    than one run at a time with all threads. Default: 2 workers on a CPU with at least 2 threads, else 1.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    names = names or [""] * len(specs)
    todo = [i for i, s in enumerate(specs) if retrain or find(s, group) is None]
    if workers is None:
        workers = 2 if not torch.cuda.is_available() and torch.get_num_threads() >= 2 else 1
    workers = max(1, min(workers, len(todo)))
    quiet = not progress or os.environ.get("TQDM_DISABLE") == "1"
    if workers == 1:
        for i in tqdm(todo, desc="runs", disable=quiet):
            train(specs[i], group, names[i], retrain, progress=False)
    elif todo:
        threads = max(1, torch.get_num_threads() // workers)
        with ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_worker_init, initargs=(threads,)
        ) as pool:
            futures = [
                pool.submit(_train_in_worker, specs[i].to_dict(), group, names[i], retrain, str(runs_dir()))
                for i in todo
            ]
            for f in tqdm(as_completed(futures), total=len(futures), desc="runs", disable=quiet):
                f.result()  # re-raises a worker's error here
    return [train(s, group, n, retrain=False, progress=False) for s, n in zip(specs, names)]
