"""Run records: every number a notebook shows comes from a record written by the run that produced it.

A ``RunSpec`` is plain data (strings, numbers, dicts) naming the model, loss, data set, transform and
training config; its hash is the ``run_id``. ``train(spec, group=...)`` builds everything through the
registries, trains with ``fgic.engine.fit`` (a ``fgic.trainer.Trainer``) and leaves, under ``runs/<group>/<run_id>/``:

- ``record.json``: params, seed, git commit (and whether the tree was dirty), a hash of the fgic
  sources, package versions, device and precision, the environment (``env``: CPU model, threads,
  determinism switches, GPU name; see ``environment``), per-epoch history, final metrics, wall time, status;
- ``last.pt``: the checkpoint after the latest epoch (resume continues from it exactly);
- ``final.pt``: the trained model (and loss) weights, loaded with ``weights_only=True``.

Calling ``train`` again with the same spec finds the finished run and returns its record instead of
retraining (``retrain=True`` forces a new run). A run interrupted part-way resumes from ``last.pt``.
Everything is built before any file is written, so a bad spec leaves nothing behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from fgic.engine import TrainConfig, _accelerator, fit, load_module_state, save_atomic, write_atomic
from fgic.paths import runs_dir
from fgic.profiles import parse_bool

if TYPE_CHECKING:
    import pandas as pd


class RunSpecError(ValueError):
    """A RunSpec field has a wrong type; the message names the field, the value and what is allowed."""


class RunPathError(ValueError):
    """A run group would leave the runs folder."""


class RunLockedError(RuntimeError):
    """Another process is training the same run; the message says which."""


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM arrived while training (handled like Ctrl-C: the run is marked interrupted and resumes next time)."""


_SPEC_TYPES = {
    "model": (str,),
    "dataset": (str,),
    "loss": (str,),
    "model_kw": (dict,),
    "loss_kw": (dict,),
    "data_kw": (dict,),
    "transform": (str,),
    "transform_kw": (dict,),
    "train": (dict,),
    "regularizer": (dict, type(None)),
    "pretrained": (bool, str),
}
_NAMES = ("model", "dataset", "loss", "transform")  # registry names: non-empty


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

    def __post_init__(self) -> None:
        for f in fields(self):
            v, types = getattr(self, f.name), _SPEC_TYPES.get(f.name, (object,))
            if not isinstance(v, types) or (f.name in _NAMES and not v):
                allowed = " or ".join("None" if t is type(None) else t.__name__ for t in types)
                empty = "a non-empty " if f.name in _NAMES else "a "
                raise RunSpecError(f"RunSpec.{f.name}={v!r} ({type(v).__name__}) must be {empty}{allowed}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), sort_keys=True))

    @property
    def run_id(self) -> str:
        """12 hex digits of everything that changes the numbers: the spec (with its training config, whose
        ``threads`` pins the CPU thread count where a profile sets it) and the data's fingerprint
        (``fgic.data.fingerprint``: the generator's version and knobs, or the file list of a real data set),
        so a run is reused only on the same data."""
        d = self.to_dict()
        if not d["init"]:
            del d["init"]  # a field added later hashes only when set, so earlier run ids stay valid
        d["data"] = self.data_identity()["hash"]
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def data_identity(self) -> dict:
        """``fgic.data.fingerprint.fingerprint`` of this spec's data set (cached per process)."""
        from fgic.data.fingerprint import fingerprint

        return fingerprint(self.dataset, self.data_kw)

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
        path = self.dir / "final.pt"
        load_module_state(model, torch.load(path, map_location=map_location, weights_only=True)["model"], path)
        return model.eval()

    def predictor(self, device: str = "cpu"):
        """The run's ``fgic.predict.Predictor`` (model + loss head): use it, not ``load_model``, to predict."""
        from fgic.predict import Predictor

        return Predictor.from_record(self, device=device)

    def load_criterion(self) -> nn.Module:
        from fgic.losses import create_loss

        spec = self.spec
        crit = create_loss(spec.loss, num_classes=self["num_classes"], feat_dim=self["feat_dim"], **spec.loss_kw)
        path = self.dir / "final.pt"
        load_module_state(crit, torch.load(path, map_location="cpu", weights_only=True)["criterion"], path)
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


def environment(accelerator: str = "cpu", threads: int = 0) -> dict:
    """The machine and thread settings of this process (record field ``env``; never part of the run id).

    CPU model, torch's intra- and inter-op threads, the determinism switches, the CUDA device name when
    ``accelerator`` is a GPU, and ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` where set. ``threads`` > 0: the
    run's own intra-op thread count (``TrainConfig.threads``, set by the trainer while it trains).
    """
    on_gpu = accelerator in ("cuda", "gpu") and torch.cuda.is_available()
    return {
        "cpu": cpu_model(),
        "num_threads": threads if threads > 0 and not on_gpu else torch.get_num_threads(),
        "num_interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cuda_device": torch.cuda.get_device_name() if on_gpu else None,
        "env_vars": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
    }


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else ``platform.processor()`` or the machine type)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _write_json(obj: dict, path: Path) -> None:
    write_atomic(json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n", path)


# ----------------------------------------------------------------------------- run folders, locks, repair


def run_dir(group: str, run_id: str = "") -> Path:
    """``runs/<group>/<run_id>``; ``group`` must be a relative path that stays inside the runs folder."""
    if not isinstance(group, str) or not group.strip():
        raise RunPathError(f"run group must be a non-empty string such as 'default', got {group!r}")
    rel = Path(group)
    if rel.is_absolute() or ".." in rel.parts or group.startswith("~"):
        raise RunPathError(
            f"run group {group!r} must be a relative name inside the runs folder ({runs_dir()}); "
            "absolute paths, '~' and '..' are not allowed"
        )
    root = runs_dir()
    d = root / group / run_id
    if not d.resolve().is_relative_to(root.resolve()):  # e.g. through a symbolic link
        raise RunPathError(f"run group {group!r} resolves to {d.resolve()}, outside the runs folder {root.resolve()}")
    return d


LOCK_NAME = ".lock"


@contextmanager
def run_lock(d: Path, timeout: float | None = None, poll: float = 0.5):
    """Hold an exclusive ``fcntl.flock`` on ``d/.lock`` while training run ``d``.

    Another holder makes this wait (``timeout=None``) or raise ``RunLockedError`` naming it after
    ``timeout`` seconds. The kernel drops the lock when its process dies, so a killed run never blocks.
    """
    d.mkdir(parents=True, exist_ok=True)
    f = open(d / LOCK_NAME, "a+")
    try:
        t0 = time.monotonic()
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = (d / LOCK_NAME).read_text().strip() or "another process"
                if timeout is not None and time.monotonic() - t0 >= timeout:
                    raise RunLockedError(
                        f"run {d} is being trained by {holder}; wait for it to finish or stop that process"
                    ) from None
                if time.monotonic() - t0 < poll:
                    print(f"note: run {d.name} is being trained by {holder}; waiting for it")
                time.sleep(poll)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        f.flush()
        yield
    finally:
        f.close()  # releases the lock


def orphans(d: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes in run folder ``d`` (``.<name>.tmp<pid>``)."""
    return sorted(p for p in d.glob(".*.tmp*") if p.is_file())


def _checkpoint_state(d: Path) -> tuple[int, list[dict]] | None:
    """(epoch, history) of ``d/last.pt``, or None without one."""
    path = d / "last.pt"
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["epoch"], state["history"]


def check_run(d: Path) -> list[str]:
    """Problems of run folder ``d`` (empty when fine): unreadable files, orphans, record vs checkpoint."""
    problems = [f"orphaned temporary file {p.name}" for p in orphans(d)]
    try:
        rec = json.loads((d / "record.json").read_text())
    except (OSError, ValueError) as e:
        return problems + [f"record.json unreadable: {e}"]
    try:
        ckpt = _checkpoint_state(d)
    except Exception as e:  # noqa: BLE001 - any load failure is the finding
        return problems + [f"last.pt unreadable: {e}"]
    if ckpt is not None:
        epoch, history = ckpt
        if rec.get("last_epoch") != epoch or rec.get("history") != history:
            problems.append(f"record.json (epoch {rec.get('last_epoch')}) disagrees with last.pt (epoch {epoch})")
    if rec.get("status") == "finished":
        try:
            torch.load(d / "final.pt", map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            problems.append(f"final.pt unreadable: {e}")
    return problems


@contextmanager
def _sigterm_as_interrupt():
    """Turn SIGTERM into ``RunInterrupted`` while training (main thread only: where Python handles signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise RunInterrupted("stopped by SIGTERM")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


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


def read_finished(d: Path) -> Record | None:
    """The finished record in run folder ``d`` (weights not needed: published records are JSON only), or None."""
    try:
        rec = Record(json.loads((d / "record.json").read_text()))
    except (OSError, ValueError):
        return None  # absent or unreadable: trained again (resuming from last.pt)
    if rec.get("status") != "finished":
        return None
    rec["dir"] = str(d)
    return rec


def find(spec: RunSpec, group: str) -> Record | None:
    """The finished record for ``spec`` in ``group`` whose weights are there too, or None."""
    d = run_dir(group, spec.run_id)
    return read_finished(d) if (d / "final.pt").is_file() else None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class _Call:
    """One call of ``train``: which run, and how to train it."""

    spec: RunSpec
    group: str
    name: str
    retrain: bool
    progress: bool = True
    stop_after: int | None = None
    lock_timeout: float | None = None


def train(
    spec: RunSpec,
    group: str = "default",
    name: str = "",
    retrain: bool | str = False,
    progress: bool = True,
    stop_after: int | None = None,
    lock_timeout: float | None = None,
) -> Record:
    """Train ``spec`` (or return its finished record) under ``runs/<group>/<run_id>/``.

    ``retrain``: a bool or one of true/false/yes/no/1/0 (papermill passes strings). ``progress``: live bars
    (quiet with ``TQDM_DISABLE=1``) and, for a finished run, one line (``run_line``): name, seed, test top-1,
    wall time, "reused" when it was not trained now. ``stop_after``: stop after that many epochs in this call,
    leaving a resumable run (for tests). ``lock_timeout``: seconds to wait for another process training the
    same run (None: wait until it is done).
    """
    call = _Call(spec, group, name, parse_bool(retrain, "retrain"), progress, stop_after, lock_timeout)
    rec, reused = _train(call)
    if progress and rec.get("status") == "finished":
        print_run_line(rec, reused)
    return rec


def run_line(rec: Record | dict, reused: bool = False) -> str:
    """The one line a finished run prints: name, seed, test top-1, wall time (and "reused")."""
    top1 = rec.get("metrics", {}).get("test_top1")
    wall = rec.get("wall_time") or 0.0
    took = f"{wall:.1f} s" if wall < 60 else f"{wall / 60:.1f} min"
    acc = "n/a" if top1 is None else f"{top1:.3f}"
    return f"{rec['name']} seed {rec.get('seed')}: test top-1 {acc}, {took}" + (" (reused)" if reused else "")


def print_run_line(rec: Record | dict, reused: bool = False) -> None:
    from tqdm.auto import tqdm

    tqdm.write(run_line(rec, reused))  # above any live bar


def _train(call: _Call) -> tuple[Record, bool]:
    """(record, reused): the finished record of ``call.spec``, or the one of a run trained now."""
    spec, group = call.spec, call.group
    d = run_dir(group, spec.run_id)
    found = None if call.retrain else find(spec, group)
    prov = provenance()
    if found is not None:
        if found.get("code_hash") != prov["code_hash"]:
            print(
                f"note: run {spec.run_id} ({call.name or spec.model}) was made by fgic code {found.get('code_hash')} "
                f"(commit {found.get('commit')}); the code is now {prov['code_hash']}. Pass retrain=True to refresh it."
            )
        return found, True
    built = build(spec)  # raises before anything is written
    with run_lock(d, call.lock_timeout):
        if not call.retrain and (found := find(spec, group)) is not None:
            return found, True  # another process finished it while this one waited
        if call.retrain:
            for p in d.iterdir():
                if p.name != LOCK_NAME:
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
        for p in orphans(d):
            p.unlink()  # left by a kill during an atomic write
        with _sigterm_as_interrupt():
            return _train_locked(call, d, prov, built), False


def _start_record(call: _Call, d: Path, prov: dict, built: tuple) -> Record:
    """The record of a run starting now, or resuming from ``d/last.pt`` (its history caught up with it)."""
    spec, (model, _, train_ds, val_ds, test_ds, _) = call.spec, built
    try:
        earlier = json.loads((d / "record.json").read_text()) if (d / "record.json").is_file() else {}
    except ValueError:
        earlier = {}
    ckpt = _checkpoint_state(d)
    return Record(
        run_id=spec.run_id,
        name=call.name or f"{spec.model}-{spec.loss}",
        group=call.group,
        params=spec.to_dict(),
        seed=spec.config.seed,
        status="running",
        started=(earlier.get("started") if ckpt else None) or _now(),  # a resumed run keeps its first start
        num_classes=len(train_ds.classes),
        classes=list(train_ds.classes),
        feat_dim=model.num_features,
        num_params=sum(p.numel() for p in model.parameters()),
        sizes={"train": len(train_ds), "val": len(val_ds), "test": len(test_ds)},
        dir=str(d),
        history=ckpt[1] if ckpt else [],  # last.pt is the truth: a record one epoch behind it is caught up
        last_epoch=ckpt[0] if ckpt else 0,
        wall_time=earlier.get("wall_time", 0.0) if ckpt else 0.0,  # training time of earlier calls
        **prov,
        data=spec.data_identity(),  # what the run id's data hash stands for (data set, files or generator knobs)
        env=environment(_accelerator(spec.config), spec.config.threads),  # of this call (a resumed run: the latest)
    )


def _train_locked(call: _Call, d: Path, prov: dict, built: tuple) -> Record:
    model, criterion, train_ds, val_ds, test_ds, reg = built
    rec = _start_record(call, d, prov, built)
    wall0, t0 = rec["wall_time"], time.perf_counter()
    wall = lambda: wall0 + time.perf_counter() - t0  # training time summed over resumes
    _write_json(rec, d / "record.json")

    def on_epoch(row: dict) -> None:  # called after last.pt is saved: the record never runs ahead of it
        rec["history"] = [*rec["history"], row]
        rec.update(last_epoch=row["epoch"], wall_time=wall())
        _write_json(rec, d / "record.json")

    try:
        result = fit(
            model,
            criterion,
            train_ds,
            val_ds,
            test_ds,
            call.spec.config,
            regularizer=reg,
            checkpoint=d / "last.pt",
            resume=True,
            stop_after=call.stop_after,
            progress=call.progress,
            on_epoch=on_epoch,
        )
    except BaseException as e:  # keep the completed epochs; Ctrl-C / SIGTERM: resumable
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        rec.update(status=status, error=f"{type(e).__name__}: {e}", wall_time=wall())
        _write_json(rec, d / "record.json")
        raise
    return _finish_record(rec, result, wall(), (model, criterion))


def _finish_record(rec: Record, result: dict, wall_time: float, modules: tuple) -> Record:
    """Store ``fit``'s result in the record; a finished run also writes ``final.pt`` (model and loss weights)."""
    d = Path(rec["dir"])
    rec.update(
        history=result["history"],
        last_epoch=len(result["history"]),
        device=result["device"],
        precision=result["precision"],
        world_size=result["world_size"],
        loss_weight_decay=result["loss_weight_decay"],
        train_img_s=result["train_img_s"],  # training throughput (images / s), mean over epochs
        peak_memory_mb=result["peak_memory_mb"],  # peak CUDA memory on a GPU, else the peak resident set size
        wall_time=wall_time,  # summed over resumes
    )
    if not result["finished"]:
        rec["status"] = "interrupted"  # resumable from last.pt
        _write_json(rec, d / "record.json")
        return rec
    rec.update(status="finished", metrics=result["metrics"], finished=_now())
    model, criterion = modules
    save_atomic({"model": model.state_dict(), "criterion": criterion.state_dict()}, d / "final.pt")
    _write_json(rec, d / "record.json")
    return rec


def with_overrides(spec: RunSpec, overrides: str | list[str] | dict) -> RunSpec:
    """``spec`` changed by overrides (as ``fgic.profiles.parse_overrides`` reads them; a new run_id):

    a ``TrainConfig`` field (``epochs=1``, ``max_steps=20``, ``limit_train=64``) goes to ``train``;
    ``image_size`` to ``transform_kw``; ``data_root`` to ``data_kw["root"]``; a RunSpec field (``dataset=cub``,
    ``pretrained=false``) replaces it; ``model_kw.width=16`` (a dotted path) sets one key of a dict field.
    """
    from fgic.profiles import parse_overrides, train_keys

    d = spec.to_dict()
    names = {f.name for f in fields(RunSpec)}
    for key, value in parse_overrides(overrides).items():
        head, _, rest = key.partition(".")
        if key in train_keys():
            d["train"][key] = value
        elif key == "image_size":
            d["transform_kw"]["image_size"] = value
        elif key == "data_root":
            d["data_kw"]["root"] = str(value)
        elif key in names:
            d[key] = value
        elif rest and isinstance(d.get(head), dict):
            d[head][rest] = value
        else:
            raise RunSpecError(
                f"unknown override {key!r} for a RunSpec: use a TrainConfig field, image_size, data_root, "
                f"a RunSpec field {sorted(names)} or a dotted path into a dict field (model_kw.width)"
            )
    return RunSpec(**d)


def list_records(group: str = "default") -> pd.DataFrame:
    """Every record in ``runs/<group>/``, and whether it applies on this machine (``matches``): its spec's
    run id, recomputed here with the data as it is now (``fgic.data.fingerprint``), is still the record's.
    A record whose data changed or is absent here does not match and would be trained again, never reused."""
    import pandas as pd

    rows = []
    for f in sorted((runs_dir() / group).glob("*/record.json")):
        try:
            rec = Record(json.loads(f.read_text()))
            spec = rec.spec
        except (ValueError, TypeError, RunSpecError) as e:
            rows.append({"run": f.parent.name, "status": f"unreadable: {e}", "matches": False})
            continue
        now = spec.data_identity()
        rows.append({
            "run": rec.run_id, "name": rec.get("name"), "status": rec.get("status"), "dataset": spec.dataset,
            "data": (rec.get("data") or {}).get("hash", "?"), "data_here": now["hash"],
            "matches": spec.run_id == rec.run_id, "test_top1": rec.metrics.get("test_top1"),
            "threads": (rec.get("env") or {}).get("num_threads"), "cpu": (rec.get("env") or {}).get("cpu"),
        })
    return pd.DataFrame(rows)


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


class GridError(RuntimeError):
    """Runs of a grid failed; the message names each one and its error."""


def make_executor(kind: str | None = None, folder: str | os.PathLike | None = None, **slurm):
    """A ``concurrent.futures``-style executor for ``train_many``, by name: None / "" / "local" (train_many's own
    process pool), "slurm" (``submitit.AutoExecutor``: one Slurm job per run) or "submitit-local" (submitit's
    local executor: the same code path as Slurm, on this machine). Defaults from ``$FGIC_EXECUTOR``,
    ``$FGIC_SLURM_PARTITION``, ``$FGIC_SLURM_GPUS`` (per job, 1), ``$FGIC_SLURM_TIMEOUT_MIN`` (per job, 2880).
    ``slurm`` keywords go to ``update_parameters`` (``slurm_partition``, ``gpus_per_node``, ``timeout_min``, ...)."""
    kind = kind if kind is not None else os.environ.get("FGIC_EXECUTOR", "")
    if kind in ("", "local"):
        return None
    try:
        import submitit
    except ImportError as e:
        raise ImportError(f"executor {kind!r} needs submitit: pip install submitit") from e
    folder = Path(folder or runs_dir() / "_submitit")
    if kind == "submitit-local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=int(slurm.pop("timeout_min", 60)), **slurm)
        return ex
    if kind == "slurm":
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        params = {
            "slurm_partition": os.environ.get("FGIC_SLURM_PARTITION") or None,
            "gpus_per_node": int(os.environ.get("FGIC_SLURM_GPUS", "1")),
            "timeout_min": int(os.environ.get("FGIC_SLURM_TIMEOUT_MIN", "2880")),
            "tasks_per_node": 1,
            "nodes": 1,
            **slurm,
        }
        ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
        return ex
    raise ValueError(f"unknown executor {kind!r}: use 'local', 'slurm' or 'submitit-local'")


def train_many(
    specs: list[RunSpec],
    group: str = "default",
    names: list[str] | None = None,
    retrain: bool = False,
    workers: int | None = None,
    progress: bool = True,
    executor=None,
    keep_going: bool | None = None,
    allow_cpu: bool | None = None,
    overrides: str | list[str] | dict | None = None,
    plan: bool = True,
) -> list[Record]:
    """Train several specs (finished ones are reused) and return their records in order.

    First the plan (``fgic.plan.make_plan``): every spec's data set and weights are checked up front (one
    ``PlanError`` lists everything missing, before anything trains), then the runs to train / reuse, the device,
    the workers and an estimated time are printed. ``plan=False`` skips it.

    ``workers`` > 1 trains that many runs side by side in spawned processes with
    ``torch.get_num_threads() // workers`` threads each: on a CPU, small networks train faster this way
    than one run at a time with all threads. Default: 2 workers on a CPU with at least 2 threads, else 1;
    never more than the available cores.

    ``executor``: any object with ``submit(fn, *args)`` returning a future / job with ``result()`` (a
    ``concurrent.futures`` executor, ``submitit.AutoExecutor`` for Slurm, ...), or a name for ``make_executor``
    (default ``$FGIC_EXECUTOR``). Each run is one task; the per-run lock (``run_lock``) makes a second process
    wait for a run another one is training, then reuse it, so several submitters may share one runs folder.

    A failing run stops the grid (pending runs are cancelled) unless ``keep_going`` (``$FGIC_KEEP_GOING``):
    then the other runs finish and one ``GridError`` lists the failures at the end.
    ``overrides`` (``"epochs=1;max_steps=20"``): applied to every spec (``with_overrides``).
    """
    from fgic.plan import available_cores, make_plan

    retrain = parse_bool(retrain, "retrain")
    if keep_going is None:
        keep_going = parse_bool(os.environ.get("FGIC_KEEP_GOING", "0"), "FGIC_KEEP_GOING")
    if overrides:
        specs = [with_overrides(s, overrides) for s in specs]
    names = names or [""] * len(specs)
    if isinstance(executor, str) or executor is None:
        executor = make_executor(executor)
    todo = [i for i, s in enumerate(specs) if retrain or find(s, group) is None]
    if workers is None:
        pinned = max((specs[i].config.threads for i in todo), default=0)  # threads a profile pins per run
        cpu = not torch.cuda.is_available()
        default = 2 if torch.get_num_threads() >= 2 else 1
        workers = (max(1, available_cores() // pinned) if pinned else default) if cpu else 1
    if executor is None:
        workers = max(1, min(workers, len(todo), available_cores()))
    if plan:
        print(make_plan(specs, group, workers, retrain, names, allow_cpu, local=executor is None))
    grid = _Grid(specs, names, group, retrain, progress, keep_going)
    grid.print_reused(todo)
    if executor is None and (workers <= 1 or not todo):
        grid.run_here(todo)
    elif todo:
        grid.run_pooled(todo, executor, workers)
    if grid.failures:
        fails = grid.failures
        raise GridError(f"{len(fails)} of {len(todo)} run(s) failed in runs/{group}:\n- " + "\n- ".join(fails))
    return [train(s, group, n, retrain=False, progress=False) for s, n in zip(specs, names)]


@dataclass
class _Grid:
    """The runs of one ``train_many`` call, and the failures it collects with ``keep_going``.

    With ``progress``: one bar over the runs to train, and one line per finished run (``run_line``):
    the reused runs first, then each trained run as it finishes (one in this process also shows its epochs).
    """

    specs: list[RunSpec]
    names: list[str]
    group: str
    retrain: bool
    progress: bool
    keep_going: bool
    failures: list[str] = field(default_factory=list)

    def bar(self, items: list):
        from tqdm.auto import tqdm

        return tqdm(items, desc="runs", disable=not self.progress or os.environ.get("TQDM_DISABLE") == "1")

    def print_reused(self, todo: list[int]) -> None:
        for i, s in enumerate(self.specs):
            if self.progress and i not in todo and (rec := find(s, self.group)) is not None:
                print_run_line(rec, reused=True)

    def failed(self, i: int, e: Exception) -> None:
        self.failures.append(f"{self.names[i] or self.specs[i].run_id}: {type(e).__name__}: {e}")

    def run_here(self, todo: list[int]) -> None:
        """Train one run after the other in this process."""
        for i in self.bar(todo):
            try:
                train(self.specs[i], self.group, self.names[i], self.retrain, progress=self.progress)
            except Exception as e:
                if not self.keep_going:
                    raise
                self.failed(i, e)

    def run_pooled(self, todo: list[int], executor, workers: int) -> None:
        """Train in ``executor``, else in a pool of ``workers`` spawned processes (threads shared out)."""
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        threads = max(1, torch.get_num_threads() // workers)
        pool = executor or ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_worker_init, initargs=(threads,)
        )
        try:
            root = str(runs_dir())
            submit = lambda i: pool.submit(
                _train_in_worker, self.specs[i].to_dict(), self.group, self.names[i], self.retrain, root
            )
            self.collect([(i, submit(i)) for i in todo])
        finally:
            if executor is None:
                pool.shutdown(wait=True, cancel_futures=True)

    def collect(self, jobs: list[tuple]) -> None:
        """Wait for each job in order; print its line, or cancel the later ones on a failure (without keep_going)."""
        for n, (i, job) in enumerate(self.bar(jobs)):
            try:
                job.result()  # re-raises a worker's error here
            except Exception as e:
                if not self.keep_going:
                    for _, later in jobs[n + 1 :]:
                        later.cancel()
                    raise
                self.failed(i, e)
                continue
            if self.progress and (rec := find(self.specs[i], self.group)) is not None:
                print_run_line(rec)
