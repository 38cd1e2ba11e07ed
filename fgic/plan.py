"""A plan before work: check a grid's data sets and weights up front, then say what will happen.

``make_plan(specs, group, workers)`` (called by ``fgic.runs.train_many`` before it trains anything):

- every spec's data set is built (its training split's file list: no image is decoded) and every pretrained
  model is looked up with ``fgic.models.pretrained.probe_weights`` on the meta device (no weights are read,
  no network is touched when ``FGIC_ALLOW_DOWNLOAD=0``); *all* missing pieces are collected and raised
  together as one ``PlanError``;
- the plan says how many runs are trained and reused, the device, the workers (never more than this
  machine's cores) and an estimated time from one timed training step of the first run to train;
- a grid of the paper profile on a CPU stops with a ``PlanError`` unless ``allow_cpu`` (``--allow-cpu``,
  ``$FGIC_ALLOW_CPU=1``): it would take weeks; with ``allow_cpu`` the estimate is printed with a warning.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import torch

from fgic.data.loading import available_cores
from fgic.runs import RunSpec, build_data, find

__all__ = ["PlanError", "Plan", "available_cores", "check", "make_plan"]


class PlanError(RuntimeError):
    """Something a grid needs is missing; the message lists every missing piece."""


def check_data(spec: RunSpec) -> str:
    """The empty string when the data set of ``spec`` can be built, else the reason (naming the root)."""
    from fgic.data import build_dataset

    if spec.dataset == "synthetic":
        return ""  # generated (and cached) on first use
    kw = {"seed": 0, **spec.data_kw}
    try:
        build_dataset(spec.dataset, split="train", **kw)
        return ""
    except (OSError, ValueError, KeyError) as e:  # DatasetRootError is a FileNotFoundError
        return str(e).strip() or type(e).__name__


def check_weights(spec: RunSpec) -> str:
    """The empty string when ``spec`` needs no pretrained weights or can have them (a local file or a download)."""
    from fgic.models import create_model
    from fgic.models.pretrained import PretrainedWeightsError, WeightsAvailable, probe_weights

    if not spec.pretrained:
        return ""
    try:
        with probe_weights(), torch.device("meta"):
            create_model(spec.model, num_classes=2, pretrained=spec.pretrained, **spec.model_kw)
    except WeightsAvailable:
        return ""
    except (PretrainedWeightsError, ValueError, KeyError, TypeError) as e:
        return str(e).strip() or type(e).__name__
    return ""


def check(specs: list[RunSpec], names: list[str] | None = None) -> list[str]:
    """Every missing piece of ``specs`` (data sets and weights), each named once with the runs that need it."""
    names = names or [s.model for s in specs]
    problems: dict[str, list[str]] = {}
    seen_data: dict[str, str] = {}
    seen_weights: dict[str, str] = {}
    for spec, name in zip(specs, names):
        dkey = f"{spec.dataset}:{sorted(spec.data_kw.items())}"
        if dkey not in seen_data:
            seen_data[dkey] = check_data(spec)
        wkey = f"{spec.model}:{spec.pretrained}:{sorted(spec.model_kw.items())}"
        if wkey not in seen_weights:
            seen_weights[wkey] = check_weights(spec)
        if seen_data[dkey]:
            problems.setdefault(f"data set {spec.dataset!r}: {seen_data[dkey]}", []).append(name or spec.run_id)
        if seen_weights[wkey]:
            problems.setdefault(f"weights of {spec.model!r}: {seen_weights[wkey]}", []).append(name or spec.run_id)
    out = []
    for problem, runs in problems.items():
        more = " ..." if len(runs) > 4 else ""
        out.append(f"{problem}\n    needed by {len(runs)} run(s): {', '.join(runs[:4])}{more}")
    return out


@dataclass
class Plan:
    group: str
    train: list[int]  # indices of the specs to train
    reuse: list[int]  # indices of finished runs that are reused
    device: str
    workers: int
    seconds: float | None = None  # estimated wall time of the runs to train
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        est = "" if self.seconds is None else f", estimated {_human(self.seconds)} (from one timed step)"
        lines = [
            f"plan for runs/{self.group}: {len(self.train)} to train, {len(self.reuse)} reused; "
            f"device {self.device}, {self.workers if self.workers else 'its'} worker(s){est}"
        ]
        return "\n".join(lines + [f"  {n}" for n in self.notes])


def _human(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def estimate_seconds(spec: RunSpec, num_train: int) -> float:
    """Seconds to train ``spec``: one timed training step (random images of the run's size and batch) x its steps."""
    from fgic.losses import create_loss
    from fgic.models import create_model

    cfg = spec.config
    size = int(spec.transform_kw.get("image_size", 224))
    classes = 10
    model = create_model(spec.model, num_classes=classes, **spec.model_kw)  # random weights: same cost
    crit = create_loss(spec.loss, num_classes=classes, feat_dim=model.num_features, **spec.loss_kw)
    device = "cuda" if cfg.accelerator in ("auto", "cuda", "gpu") and torch.cuda.is_available() else "cpu"
    model, crit = model.to(device).train(), crit.to(device)
    batch = min(cfg.batch_size, 8) if device == "cpu" else cfg.batch_size  # a CPU step is timed on a small batch
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.arange(batch, device=device) % classes
    from fgic.engine import TrainModule

    module = TrainModule(model, crit)
    times = []
    for _ in range(2):  # the first step warms up
        t0 = time.perf_counter()
        loss, _ = module(x, y)
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    per_image = times[-1] / batch
    n = min(num_train, cfg.limit_train) if cfg.limit_train else num_train
    steps = -(-n // cfg.batch_size)
    if cfg.max_steps:
        steps = min(steps, cfg.max_steps)
    return per_image * cfg.batch_size * steps * cfg.epochs * 1.3  # + evaluation and data loading


def spec_seconds(spec: RunSpec) -> float:
    """``estimate_seconds`` of ``spec`` on its own training split, leaving the random streams as they were."""
    n = len(build_data(spec)[0])
    with torch.random.fork_rng(devices=[]):
        return estimate_seconds(spec, n)


def is_paper(group: str) -> bool:
    return group.split("/")[0] == "paper" or os.environ.get("FGIC_PROFILE") == "paper"


def make_plan(
    specs: list[RunSpec],
    group: str,
    workers: int,
    retrain: bool = False,
    names: list[str] | None = None,
    allow_cpu: bool | None = None,
    estimate: bool = True,
    local: bool = True,
) -> Plan:
    """Check ``specs`` (raises one ``PlanError`` listing everything missing) and return the plan.

    ``local``: the runs train on this machine (not through a cluster executor), so the CPU check applies.
    """
    from fgic.profiles import parse_bool

    todo = [i for i, s in enumerate(specs) if retrain or find(s, group) is None]
    reuse = [i for i in range(len(specs)) if i not in set(todo)]
    missing = check([specs[i] for i in todo], [(names or [""] * len(specs))[i] for i in todo])
    if missing:
        raise PlanError(
            f"{len(missing)} missing piece(s) for the {len(todo)} run(s) to train in runs/{group}; "
            "nothing was trained:\n- " + "\n- ".join(missing)
        )
    accel = {specs[i].config.accelerator for i in todo} or {"auto"}
    cuda = torch.cuda.is_available() and accel != {"cpu"}
    device = f"cuda ({torch.cuda.get_device_name(0)})" if cuda else f"cpu ({available_cores()} cores)"
    plan = Plan(group, todo, reuse, device if local else "the executor's", workers if local else 0)
    if todo and estimate:
        first = specs[todo[0]]
        try:
            per_run = spec_seconds(first)
            plan.seconds = per_run * len(todo) / max(1, workers)
        except Exception as e:  # noqa: BLE001 - an estimate is a courtesy; the run itself will report errors
            plan.notes.append(f"no time estimate ({type(e).__name__}: {e})")
    if todo and local and not cuda and is_paper(group):
        if allow_cpu is None:
            allow_cpu = parse_bool(os.environ.get("FGIC_ALLOW_CPU", "0"), "FGIC_ALLOW_CPU")
        if not allow_cpu:
            raise PlanError(
                f"{plan}\nthe paper profile is meant for a GPU and no GPU is available: pass --allow-cpu "
                "(FGIC_ALLOW_CPU=1, train_many(..., allow_cpu=True)) to train on the CPU anyway, or try the "
                "whole grid cheaply first with `python -m fgic dry-run`"
            )
        plan.notes.append("warning: the paper profile on a CPU (--allow-cpu); see the estimate")
    return plan
