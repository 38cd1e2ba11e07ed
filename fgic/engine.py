"""The pieces of the one train / evaluate loop every notebook uses, on Lightning Fabric.

Fabric handles devices (CPU, one GPU, several GPUs with DDP, two CPU processes in tests), mixed
precision and the distributed sampler plumbing; this file keeps only what is ours: the training config,
the optimiser and schedule presets of the seed papers, per-module learning rates, metrics (top-1,
per-class accuracy, confusion matrix), atomic checkpoint writes and ``fit``. The loop itself is
``fgic.trainer.Trainer``; the NaN/inf guard, checkpoints with exact resume, history rows and progress
bars are its callbacks (``fgic.callbacks``).

Exact resume: every epoch reseeds all random streams from ``(seed, epoch)`` (data order, augmentation,
dropout, GHOLM's theta), so a run resumed from the checkpoint written at the end of epoch ``e`` sees the
same random numbers from epoch ``e + 1`` on as an uninterrupted run.

Training step: ``model.training_loss(x, y, criterion) -> (loss, logits)`` when the model defines it
(GHOLM's three branches), else ``criterion(model_outputs(model, x), y)``. Prediction:
``model.predict_logits(x)`` when defined, else ``criterion.logits(model_outputs(model, x))``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from fgic.models.base import model_outputs, predict_logits


@dataclass
class TrainConfig:
    """Flat training config: one knob per line (nanoGPT style)."""

    epochs: int = 10  # passes over the training split
    batch_size: int = 32  # per process
    eval_batch_size: int = 0  # 0: 2 x batch_size
    optimizer: str = "sgd"  # "sgd" | "adam" | "adamw"
    lr: float = 0.1  # base learning rate (groups in param_groups override it)
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = False  # SGD Nesterov momentum
    weight_decay: float = 5e-4  # L2 / decoupled weight decay
    schedule: str = "cosine"  # "cosine" | "multistep" | "step" | "none" (stepped once per epoch)
    milestones: tuple[int, ...] = ()  # multistep: epochs after which lr *= gamma
    step_size: int = 0  # step: lr *= gamma every step_size epochs
    gamma: float = 0.1  # decay factor for multistep / step
    warmup_epochs: int = 0  # linear warm-up epochs before the schedule
    param_groups: dict[str, float] = field(default_factory=dict)  # module-name prefix -> lr ("" = the rest)
    grad_clip: float = 0.0  # max grad norm, 0 = off
    precision: str = "auto"  # "auto" (bf16-mixed on CUDA, 32-true on CPU) or any Fabric precision
    channels_last: bool | None = None  # None: on CUDA only
    compile: bool = False  # torch.compile the training module
    accelerator: str = "auto"  # "cpu" | "cuda" | "auto"
    devices: int = 1  # processes / GPUs
    strategy: str = "auto"  # "auto" | "ddp" | "ddp_spawn"
    num_workers: int | str = 0  # data-loader workers per process; "auto": available cores - 1
    eval_every: int = 1  # evaluate val/test every n epochs (and always after the last)
    eval_test: bool = True  # also evaluate the test split during training (for the curves)
    max_steps: int = 0  # training steps per epoch at most, 0 = all (quick checks: --set max_steps=20)
    limit_train: int = 0  # train on a seeded random subset of this many images, 0 = all
    limit_eval: int = 0  # evaluate on a fixed random subset of this many images per split, 0 = all
    seed: int = 0  # seeds model init and every per-epoch random stream
    threads: int = 0  # torch intra-op threads while this run trains on a CPU (0 = the process's); CPU results
    # depend on it, so a profile that sets it makes it part of the run id (a record is reused only at that count)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field's type and range; raise one ``ConfigError`` naming the field, value and what is allowed."""
        for f in fields(self):
            v = getattr(self, f.name)
            allowed = _ALLOWED.get(f.name)
            if allowed is not None:
                if v not in allowed:
                    raise ConfigError(f"unknown {f.name} {v!r}: TrainConfig.{f.name} must be one of {list(allowed)}")
                continue
            kind, lo, strict = _RANGES[f.name]
            if kind in (bool, "bool|None"):
                if not (isinstance(v, bool) or (v is None and kind == "bool|None")):
                    nullable = " or None" if kind == "bool|None" else ""
                    raise ConfigError(f"TrainConfig.{f.name}={v!r} must be true or false{nullable}")
                continue
            if f.name == "num_workers" and v == "auto":  # available cores - 1 (fgic.data.loading.resolve_workers)
                continue
            if kind == "milestones":
                if not all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in v):
                    raise ConfigError(f"TrainConfig.milestones={list(v)!r} must be a list of epoch numbers >= 1")
                continue
            if kind == "param_groups":
                if not isinstance(v, dict) or not all(
                    isinstance(k, str) and _is_num(x) and x >= 0 for k, x in v.items()
                ):
                    raise ConfigError(f"TrainConfig.param_groups={v!r} must map module-name prefixes (str) to lr >= 0")
                continue
            is_int = isinstance(v, int) and not isinstance(v, bool)
            if not (is_int if kind is int else _is_num(v)) or not math.isfinite(v):
                what = "an integer" if kind is int else "a finite number"
                raise ConfigError(f"TrainConfig.{f.name}={v!r} ({type(v).__name__}) must be {what}")
            if (v <= lo) if strict else (v < lo):
                raise ConfigError(f"TrainConfig.{f.name}={v!r} must be {'>' if strict else '>='} {lo}")
        if self.schedule == "step" and self.step_size < 1:
            raise ConfigError(f"TrainConfig.step_size={self.step_size!r} must be >= 1 with schedule='step'")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        if not isinstance(d, dict):
            raise ConfigError(f"the training config must be a dict of TrainConfig fields, got {type(d).__name__}")
        unknown = set(d) - names
        if unknown:
            raise TypeError(f"unknown TrainConfig keys: {sorted(unknown)}; allowed: {sorted(names)}")
        d = dict(d)
        if isinstance(d.get("milestones"), list | tuple):
            d["milestones"] = tuple(d["milestones"])
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d


class NonFiniteLossError(FloatingPointError):
    pass


class ConfigError(ValueError):
    """A TrainConfig field has a wrong type or value; the message names the field, the value and what is allowed."""


def _is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# What each TrainConfig field accepts: a set of choices, or (type, lower bound, bound excluded).
_ALLOWED = {
    "optimizer": ("sgd", "adam", "adamw"),
    "schedule": ("cosine", "multistep", "step", "none"),
    "accelerator": ("auto", "cpu", "cuda", "gpu", "mps", "tpu"),
    "strategy": ("auto", "ddp", "ddp_spawn"),
    "precision": ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "32", "16", "64"),
}
_RANGES = {
    "epochs": (int, 1, False),
    "batch_size": (int, 1, False),
    "eval_batch_size": (int, 0, False),
    "lr": (float, 0, True),
    "momentum": (float, 0, False),
    "nesterov": (bool, None, None),
    "weight_decay": (float, 0, False),
    "milestones": ("milestones", None, None),
    "step_size": (int, 0, False),
    "gamma": (float, 0, True),
    "warmup_epochs": (int, 0, False),
    "param_groups": ("param_groups", None, None),
    "grad_clip": (float, 0, False),
    "channels_last": ("bool|None", None, None),
    "compile": (bool, None, None),
    "devices": (int, 1, False),
    "num_workers": (int, 0, False),
    "eval_every": (int, 1, False),
    "eval_test": (bool, None, None),
    "max_steps": (int, 0, False),
    "limit_train": (int, 0, False),
    "limit_eval": (int, 0, False),
    "seed": (int, 0, False),
    "threads": (int, 0, False),
}


# ----------------------------------------------------------------------------- optimiser and schedule


def build_param_groups(
    modules: dict[str, nn.Module], base_lr: float, prefixes: dict[str, float], weight_decay: float | None = None
) -> list[dict]:
    """Split parameters by the longest matching module-name prefix (names as ``model.layer1...``).

    ``modules`` maps a top-level name ("model", "criterion") to a module; prefixes are matched against
    the name inside the model (``"attention"`` matches ``model.attention.fc.weight``) and ``""`` is the rest.
    Weight decay: ``weight_decay`` for the model; a loss's own parameters (centres, margin-classifier
    weights) get ``loss_weight_decay(criterion, weight_decay)``, each loss's documented choice.
    """
    groups: dict[tuple, list] = {}
    keys = sorted(prefixes, key=len, reverse=True)
    for top, mod in modules.items():
        wd = loss_weight_decay(mod, weight_decay) if top == "criterion" else weight_decay
        for name, p in mod.named_parameters():
            if not p.requires_grad:
                continue
            lr = base_lr
            if top == "model":
                lr = next((prefixes[k] for k in keys if k and name.startswith(k)), prefixes.get("", base_lr))
            groups.setdefault((lr, wd), []).append(p)
    out = []
    for (lr, wd), ps in groups.items():
        out.append({"params": ps, "lr": lr, "initial_lr": lr, **({} if wd is None else {"weight_decay": wd})})
    return out


def loss_weight_decay(criterion: nn.Module, default: float | None) -> float | None:
    """Weight decay of a loss's parameters: its ``param_weight_decay`` (see each loss's docstring) or ``default``."""
    wd = getattr(criterion, "param_weight_decay", None)
    return default if wd is None else wd


def build_optimizer(groups: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}: use 'sgd', 'adam' or 'adamw'")


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    """Multiplier of each group's initial lr during 0-based ``epoch`` (a pure function: resume-safe)."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    e = epoch - cfg.warmup_epochs
    n = max(cfg.epochs - cfg.warmup_epochs, 1)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * e / n))
    if cfg.schedule == "multistep":
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if cfg.schedule == "step":
        if cfg.step_size < 1:
            raise ValueError("schedule='step' needs step_size >= 1")
        return cfg.gamma ** (e // cfg.step_size)
    if cfg.schedule == "none":
        return 1.0
    raise ValueError(f"unknown schedule {cfg.schedule!r}: use 'cosine', 'multistep', 'step' or 'none'")


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] * factor


# ----------------------------------------------------------------------------- the training module


class TrainModule(nn.Module):
    """Model + criterion in one module so DDP syncs the loss's learnable parameters too."""

    def __init__(self, model: nn.Module, criterion: nn.Module, regularizer: Callable | None = None):
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.regularizer = regularizer

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        if y is None:  # prediction: the same scores a Predictor gives
            return predict_logits(self.model, self.criterion, x)  # (B, K)
        if hasattr(self.model, "training_loss"):
            loss, logits = self.model.training_loss(x, y, self.criterion)
        else:
            out = model_outputs(self.model, x)
            loss, logits = self.criterion(out, y), self.criterion.logits(out)
        if self.regularizer is not None:
            loss = loss + self.regularizer(self.model)
        return loss, logits


def seed_epoch(seed: int, epoch: int) -> None:
    """Reseed python-free random streams for one epoch (torch CPU/CUDA and numpy)."""
    s = (seed * 100_003 + epoch * 7919) % (2**31)
    torch.manual_seed(s)
    np.random.seed(s)


def _precision(cfg: TrainConfig) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16-mixed" if _accelerator(cfg) == "cuda" else "32-true"


def _accelerator(cfg: TrainConfig) -> str:
    if cfg.accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.accelerator


def make_fabric(cfg: TrainConfig):
    from lightning_fabric import Fabric

    strategy = cfg.strategy
    if strategy == "auto" and cfg.devices > 1:
        strategy = "ddp"
    return Fabric(accelerator=_accelerator(cfg), devices=cfg.devices, strategy=strategy, precision=_precision(cfg))


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(fabric, module: nn.Module, loader: DataLoader, num_classes: int, channels_last: bool = False) -> dict:
    """Top-1, top-5, per-class accuracy and confusion matrix over ``loader`` (gathered over processes)."""
    module.eval()
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.long, device=fabric.device)
    top5 = torch.zeros((), dtype=torch.long, device=fabric.device)
    k = min(5, num_classes)
    for x, y in loader:
        x, y = x.to(fabric.device, non_blocking=True), y.to(fabric.device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = module(x)  # (B, K)
        pred = logits.argmax(1)  # (B,)
        confusion += torch.bincount(y * num_classes + pred, minlength=num_classes**2)
        top5 += (logits.topk(k, 1).indices == y[:, None]).any(1).sum()
    confusion = fabric.all_reduce(confusion, reduce_op="sum").view(num_classes, num_classes).cpu()
    out = confusion_metrics(confusion)
    out["top5"] = float(fabric.all_reduce(top5, reduce_op="sum")) / max(out["n"], 1)
    return out


def confusion_metrics(confusion: torch.Tensor) -> dict:
    """top1, per-class accuracy (None for classes with no sample) and the matrix (rows = true class)."""
    support = confusion.sum(1)
    correct = confusion.diag()
    per_class = correct / support.clamp(min=1)  # (K,)
    return {
        "top1": float(correct.sum() / support.sum().clamp(min=1)),
        "per_class_acc": [float(a) if n > 0 else None for a, n in zip(per_class, support)],
        "confusion": confusion.tolist(),
        "n": int(support.sum()),
    }


# ----------------------------------------------------------------------------- fit


def tmp_name(path: Path) -> Path:
    """The temporary file ``save_atomic`` / ``write_atomic`` write before renaming (``.<name>.tmp<pid>``)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_durably(tmp: Path, path: Path) -> None:
    """fsync ``tmp``, rename it to ``path``, fsync the folder: after a power loss, old or new file, never empty."""
    try:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def save_atomic(obj, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename (never a half-written file)."""
    path = Path(path)
    tmp = tmp_name(path)
    try:
        torch.save(obj, tmp)
    except BaseException:  # e.g. Ctrl-C or SIGTERM in the middle of the write: leave no orphan
        tmp.unlink(missing_ok=True)
        raise
    _replace_durably(tmp, path)


def write_atomic(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` like ``save_atomic``: temporary file, fsync, rename, fsync the folder."""
    path = Path(path)
    tmp = tmp_name(path)
    try:
        tmp.write_text(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _replace_durably(tmp, path)


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the module it is loaded into (another model, class count or loss)."""


def load_module_state(module: nn.Module, state: dict, path: str | os.PathLike = "checkpoint") -> None:
    """``module.load_state_dict(state)`` with one clear error naming the file and the first mismatches."""
    state = unwrap_state(state)
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [
        f"{k}: {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = [f"shape mismatch {shapes[:3]}"] if shapes else []
        parts += [f"missing keys {missing[:3]}"] if missing else []
        parts += [f"unexpected keys {unexpected[:3]}"] if unexpected else []
        raise CheckpointMismatchError(
            f"{path} does not fit this {type(module).__name__} ({'; '.join(parts)}): it was saved from another "
            "model, number of classes or loss. Build the same spec, or start without the checkpoint."
        )
    module.load_state_dict(state)


def unwrap_state(state: dict) -> dict:
    """A state dict without torch.compile's ``_orig_mod.`` prefixes (checkpoints of older compiled runs)."""
    return {k.replace("_orig_mod.", ""): v for k, v in state.items()}


def fit(
    model: nn.Module,
    criterion: nn.Module,
    train_ds: Dataset,
    val_ds: Dataset | None = None,
    test_ds: Dataset | None = None,
    cfg: TrainConfig | None = None,
    *,
    regularizer: Callable[[nn.Module], torch.Tensor] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    callbacks: list | tuple = (),
) -> dict:
    """Train ``model`` with ``criterion``; return ``{"history": [...], "metrics": {...}, "device": ...}``.

    A thin wrapper of ``fgic.trainer.Trainer`` with the usual callbacks (``fgic.callbacks``):
    ``checkpoint``: path of the checkpoint written atomically after every epoch; with ``resume`` an
    existing one is continued. ``on_epoch(row)`` is called with each history row (rank 0), after the
    checkpoint. ``progress``: live bars (``TQDM_DISABLE=1`` silences them). ``callbacks``: more ``Callback``s,
    called after those. ``stop_after``: stop after that many epochs in this call (used to test resume).
    Multi-process runs (``cfg.devices > 1``) with ``strategy="ddp_spawn"`` run in spawned workers and return
    rank 0's result.
    """
    from fgic.callbacks import Checkpoint, OnEpoch, Progress
    from fgic.trainer import Trainer

    cbs = [Checkpoint(checkpoint, resume)] if checkpoint else []
    cbs += [OnEpoch(on_epoch)] if on_epoch else []
    cbs += [Progress(progress), *callbacks]
    trainer = Trainer(model, criterion, cfg, regularizer=regularizer, callbacks=cbs)
    return trainer.fit(train_ds, val_ds, test_ds, stop_after=stop_after)


def limit(ds: Dataset | None, n: int, seed: int) -> Dataset | None:
    """A seeded random subset of ``n`` images of ``ds`` (in their original order), or ``ds`` when ``n`` is 0 or more."""
    if ds is None or n <= 0 or n >= len(ds):
        return ds
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].sort().values.tolist()
    sub = torch.utils.data.Subset(ds, idx)
    sub.classes = getattr(ds, "classes", None)
    return sub


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process in MiB: CUDA memory allocated on a GPU, else the peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def loss_parts(module: TrainModule) -> dict[str, torch.Tensor]:
    """The named parts of the last training loss (recorded as ``loss_<name>`` history columns).

    A model that computes its own loss (``training_loss``) and sets ``last_losses`` reports its parts
    (GHOLM: raw, crop, drop, supcon); otherwise the criterion's ``last_losses`` (center: ce, center;
    mc: ce, dis, div). Each part is a 0-d tensor as it enters the total (weights applied).
    """
    if hasattr(module.model, "training_loss"):
        return getattr(module.model, "last_losses", {})
    return getattr(module.criterion, "last_losses", {})
