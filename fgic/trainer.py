"""The training loop as a small ``Trainer``; checkpoints, history rows, progress and the NaN guard are callbacks.

``Trainer(model, criterion, cfg, regularizer=..., callbacks=[...]).fit(train, val, test)`` returns the same
result dict as ``fgic.engine.fit`` (which builds a trainer with the usual callbacks: ``Checkpoint``,
``OnEpoch``, ``Progress``; see ``fgic.callbacks``). One epoch, in this order (exact resume depends on it):
reseed every random stream from ``(seed, epoch)``, set the sampler's epoch, the loss's ``step_epoch`` and the
learning rate; the training pass; evaluation of val and test every ``eval_every`` epochs and after the last;
the history row; the callbacks (``Checkpoint`` before ``OnEpoch``: a run record never runs ahead of last.pt).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.data import Dataset, DistributedSampler

from fgic import engine
from fgic.callbacks import HOOKS, Callback, NonFiniteGuard
from fgic.data.loading import make_loader
from fgic.engine import (
    TrainConfig,
    TrainModule,
    build_optimizer,
    build_param_groups,
    limit,
    load_module_state,
    loss_parts,
    loss_weight_decay,
    lr_factor,
    make_fabric,
    peak_memory_mb,
    save_atomic,
    seed_epoch,
    set_lr,
)


@contextlib.contextmanager
def intra_op_threads(n: int):
    """Run the block with ``n`` torch intra-op threads (``n`` = 0: leave the count alone), then restore it."""
    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n > 0:
            torch.set_num_threads(old)


class Trainer:
    """Model + loss, optimiser, learning-rate schedule and Fabric, trained epoch by epoch with callbacks.

    State after ``fit`` (rank 0's in a ``ddp_spawn`` run stays in the worker): ``module`` (the plain
    ``TrainModule``, whose state the checkpoints hold), ``fmodule`` (as Fabric / torch.compile wrap it),
    ``optimizer``, ``history`` (one row per epoch), ``epoch`` (epochs completed; while an epoch trains,
    its 0-based index).
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        cfg: TrainConfig | None = None,
        *,
        regularizer=None,
        callbacks: list[Callback] | tuple = (),
    ):
        self.model, self.criterion, self.regularizer = model, criterion, regularizer
        self.cfg = cfg or TrainConfig()
        self.callbacks = [NonFiniteGuard(), *callbacks]
        self.fabric = self.module = self.fmodule = self.optimizer = None
        self.history: list[dict] = []
        self.epoch = 0
        self.final: dict[str, dict] = {}  # full metrics of the last epoch: evaluated once, for its row and the result
        self.index_hooks()

    @property
    def is_global_zero(self) -> bool:
        return self.fabric.is_global_zero

    def index_hooks(self) -> None:
        """Note which hooks each callback defines (called by ``fit``: the per-step hooks cost nothing unused)."""
        defines = lambda c, h: getattr(type(c), h, None) not in (None, getattr(Callback, h))
        self._hooks = {h: [getattr(c, h) for c in self.callbacks if defines(c, h)] for h in HOOKS}

    def call(self, hook: str, *args) -> None:
        """Run ``hook`` of every callback that defines it, in list order."""
        for fn in self._hooks[hook]:
            fn(self, *args)

    # ------------------------------------------------------------------------- fit

    def fit(
        self, train_ds: Dataset, val_ds: Dataset | None = None, test_ds: Dataset | None = None, stop_after=None
    ) -> dict:
        """Train; return ``{"history", "device", "world_size", "precision", "seconds", "finished", "metrics", ...}``.

        ``stop_after``: stop after that many epochs in this call. ``cfg.devices > 1`` with ``strategy="ddp_spawn"``
        trains in spawned workers and returns rank 0's result.
        """
        cfg = self.cfg
        cfg.validate()  # fields may have been changed after construction
        if len(train_ds) == 0:
            raise ValueError("the training split is empty: no image to train on (check the data root and split)")
        data = (limit(train_ds, cfg.limit_train, cfg.seed), *(limit(d, cfg.limit_eval, 0) for d in (val_ds, test_ds)))
        fabric = make_fabric(cfg)
        modules = self.model, self.criterion, self.regularizer
        if cfg.strategy == "ddp_spawn" and cfg.devices > 1:
            return fabric.launch(_fit_in_process, self, modules, data, stop_after)
        fabric.launch()
        with intra_op_threads(cfg.threads if fabric.device.type == "cpu" else 0):
            return _fit_in_process(fabric, self, modules, data, stop_after)

    def _fit(self, data: tuple, stop_after: int | None) -> dict:
        self.index_hooks()
        self.build()
        try:
            self.call("on_fit_start")  # before Fabric wraps the module: Checkpoint resumes here
            self.setup(*data)
            t0 = time.perf_counter()
            last = self.cfg.epochs if stop_after is None else min(self.cfg.epochs, self.epoch + stop_after)
            for epoch in range(self.epoch, last):
                self.run_epoch(epoch)
            return self.result(time.perf_counter() - t0)
        finally:
            self.call("on_fit_end")

    def build(self) -> None:
        """The ``TrainModule`` (channels-last on CUDA) and its optimiser, with an empty history."""
        cfg, model, criterion = self.cfg, self.model, self.criterion
        self.channels_last = cfg.channels_last if cfg.channels_last is not None else self.fabric.device.type == "cuda"
        module = TrainModule(model, criterion, self.regularizer)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        modules = {"model": model, "criterion": criterion}
        groups = build_param_groups(modules, cfg.lr, cfg.param_groups, cfg.weight_decay)
        self.module, self.optimizer = module, build_optimizer(groups, cfg)
        self.history, self.epoch, self.final = [], 0, {}

    def setup(self, train_ds: Dataset, val_ds: Dataset | None, test_ds: Dataset | None) -> None:
        """Wrap module and optimiser with Fabric; build the (distributed) training and evaluation loaders."""
        cfg, fabric = self.cfg, self.fabric
        # torch.compile wraps the module; checkpoints always hold the plain module's state (no _orig_mod.)
        module = torch.compile(self.module) if cfg.compile else self.module
        self.fmodule, self.optimizer = fabric.setup(module, self.optimizer)
        self.sampler = DistributedSampler(train_ds, fabric.world_size, fabric.global_rank, shuffle=True, seed=cfg.seed)
        # Loaders are not wrapped by Fabric: its wrapper calls sampler.set_epoch() with its own counter,
        # which restarts at 0 on resume. Batches are moved to the device in the loops instead.
        # fgic.data.loading: workers ("auto": from the cores), persistent workers, pinned memory on CUDA
        kw = dict(num_workers=cfg.num_workers, device=fabric.device)
        drop = len(train_ds) > cfg.batch_size
        self.train_loader = make_loader(
            train_ds, cfg.batch_size, sampler=self.sampler, drop_last=drop, seed=cfg.seed, **kw
        )
        n = len(self.train_loader)
        self.steps_per_epoch = min(n, cfg.max_steps) if cfg.max_steps else n
        eval_bs = cfg.eval_batch_size or 2 * cfg.batch_size
        self.eval_loaders = {
            split: make_loader(
                ds, eval_bs, sampler=DistributedSampler(ds, fabric.world_size, fabric.global_rank, shuffle=False), **kw
            )
            for split, ds in (("val", val_ds), ("test", test_ds if cfg.eval_test else None))
            if ds is not None and len(ds) > 0
        }

    # ------------------------------------------------------------------------- one epoch

    def run_epoch(self, epoch: int) -> dict:
        """Train 0-based ``epoch``, evaluate when due, append its history row, call the callbacks."""
        cfg = self.cfg
        seed_epoch(cfg.seed, epoch)
        self.sampler.set_epoch(epoch)
        if hasattr(self.criterion, "step_epoch"):
            self.criterion.step_epoch(epoch)
        set_lr(self.optimizer, lr_factor(cfg, epoch))
        self.call("on_epoch_start", epoch)
        row = self.train_epoch(epoch)
        self.call("on_train_epoch_end", row)
        is_last = epoch + 1 == cfg.epochs
        if (epoch + 1) % cfg.eval_every == 0 or is_last:  # val and test alike
            for split, m in self.evaluate().items():
                row[f"{split}_acc"] = m["top1"]
                if is_last:
                    self.final[split] = m
        self.history.append(row)
        self.epoch = epoch + 1
        self.call("on_epoch_end", row)
        self.fabric.barrier()
        return row

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training loader (at most ``max_steps`` steps); its history row without evaluation."""
        fabric, cfg, optimizer = self.fabric, self.cfg, self.optimizer
        self.fmodule.train()
        t0 = time.perf_counter()
        sums = {
            "loss": torch.zeros((), device=fabric.device),
            "correct": torch.zeros((), dtype=torch.long, device=fabric.device),
        }
        parts: dict[str, torch.Tensor] = {}  # loss parts summed on the device: one host sync per epoch
        seen = 0
        # Each loader iterator draws its base seed from the global RNG. The loop used to iterate through
        # tqdm.auto, whose __init__ calls iter(loader) once more: that draw is kept, so results stay bit-identical.
        iter(self.train_loader)
        for step, (x, y) in enumerate(self.train_loader):
            x, y = x.to(fabric.device, non_blocking=True), y.to(fabric.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss, logits = self.fmodule(x, y)
            self.call("on_train_loss", step, loss)
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            if cfg.grad_clip > 0:
                fabric.clip_gradients(self.fmodule, optimizer, max_norm=cfg.grad_clip)
            optimizer.step()
            sums["loss"] += loss.detach() * y.shape[0]
            sums["correct"] += (logits.detach().argmax(1) == y).sum()
            for k, v in loss_parts(self.module).items():
                parts[k] = parts.get(k, 0) + v.detach() * y.shape[0]
            seen += y.shape[0]
            self.call("on_train_batch_end", step)
            if cfg.max_steps and step + 1 >= cfg.max_steps:
                break
        return self._epoch_row(epoch, sums, parts, seen, t0)

    def _epoch_row(self, epoch: int, sums: dict, parts: dict, seen: int, t0: float) -> dict:
        """Sum over processes (the epoch's one host sync) and make the row: means, lr, time, throughput."""
        device, names = self.fabric.device, sorted(parts)
        totals = self.fabric.all_reduce(
            torch.stack(
                [sums["loss"], sums["correct"].float(), torch.tensor(float(seen), device=device)]
                + [parts[k].float().reshape(()) for k in names]
            ),
            reduce_op="sum",
        )
        means = (torch.cat([totals[:2], totals[3:]]) / totals[2]).tolist()
        return {
            "epoch": epoch + 1,
            "train_loss": means[0],
            "train_acc": means[1],
            **{f"loss_{k}": m for k, m in zip(names, means[2:])},
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": (seconds := time.perf_counter() - t0),
            "train_img_s": totals[2].item() / max(seconds, 1e-9),  # throughput over all processes
        }

    def evaluate(self, splits: list[str] | None = None) -> dict[str, dict]:
        """``{split: metrics}`` (``fgic.engine.evaluate``: top-1, top-5, per class, confusion) of the eval loaders."""
        num_classes = self.model.num_classes
        return {
            split: engine.evaluate(self.fabric, self.fmodule, loader, num_classes, self.channels_last)
            for split, loader in self.eval_loaders.items()
            if splits is None or split in splits
        }

    # ------------------------------------------------------------------------- checkpoints

    def save(self, path: str | Path) -> None:
        """Write the checkpoint (module, optimiser, history, epochs done) atomically (``engine.save_atomic``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": self.history,
            "epoch": self.epoch,
        }
        save_atomic(state, path)

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint written by ``save``: weights, optimiser state, history and epoch."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        load_module_state(self.module, state["module"], path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.history, self.epoch = state["history"], state["epoch"]

    # ------------------------------------------------------------------------- result

    def result(self, seconds: float) -> dict:
        """The result of ``fit``: history, device, precision, final metrics (when finished) and measurements."""
        cfg, fabric = self.cfg, self.fabric
        result = {
            "history": self.history,
            "device": str(fabric.device),
            "world_size": fabric.world_size,
            "precision": engine._precision(cfg),
            "seconds": seconds,
            "finished": len(self.history) == cfg.epochs,
            "loss_weight_decay": loss_weight_decay(self.criterion, cfg.weight_decay),
        }
        if result["finished"]:
            result["metrics"] = self.final_metrics()
        # measurements, not results: kept out of "metrics" so that a resumed run's metrics equal an uninterrupted one's
        trained = [r["train_img_s"] for r in self.history if r.get("train_img_s")]
        result["train_img_s"] = sum(trained) / len(trained) if trained else None  # mean over epochs, all processes
        result["peak_memory_mb"] = peak_memory_mb(fabric.device)
        return result

    def final_metrics(self) -> dict:
        """val / test top-1 and top-5, and the test split's per-class accuracy and confusion matrix (else val's)."""
        missing = [s for s in self.eval_loaders if s not in self.final]  # resumed after the last epoch was trained
        self.final.update(self.evaluate(missing))
        metrics = {}
        for split in self.eval_loaders:
            m = self.final[split]
            metrics[f"{split}_top1"], metrics[f"{split}_top5"] = m["top1"], m["top5"]
            if split == "test" or "test" not in self.eval_loaders:
                metrics.update(per_class_acc=m["per_class_acc"], confusion=m["confusion"])
        return metrics


def _fit_in_process(fabric, trainer: Trainer, modules: tuple, data: tuple, stop_after: int | None) -> dict:
    """``trainer``'s fit in this process (each spawned worker of a ``ddp_spawn`` run gets its own copy).

    ``modules`` (model, criterion, regularizer) travel as arguments of their own: Fabric gives spawned CPU
    workers private copies of the modules it finds in the arguments (a module reached only through the trainer
    would share its weights between the workers, which then step them once per process).
    """
    trainer.fabric = fabric
    trainer.model, trainer.criterion, trainer.regularizer = modules
    return trainer._fit(data, stop_after)
