"""Callbacks of the ``fgic.trainer.Trainer``: the NaN guard, checkpoints, history rows and progress bars.

A callback overrides any of these hooks; the trainer calls them in the order of its ``callbacks`` list
(``NonFiniteGuard`` first, always), on every process:

- ``on_fit_start(trainer)``: module and optimiser built, before Fabric wraps them (``Checkpoint`` resumes here);
- ``on_epoch_start(trainer, epoch)``: 0-based ``epoch``, random streams reseeded and lr set;
- ``on_train_loss(trainer, step, loss)``: each step's loss, before the backward pass (``NonFiniteGuard``);
- ``on_train_batch_end(trainer, step)``: after the optimiser step;
- ``on_train_epoch_end(trainer, row)``: the training pass's history row, before evaluation;
- ``on_epoch_end(trainer, row)``: the epoch's full history row (evaluated), already in ``trainer.history``;
- ``on_fit_end(trainer)``: always, also after an error (bars are closed here).

Work that only one process should do (writing files, callbacks of the caller) checks ``trainer.is_global_zero``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from fgic.engine import NonFiniteLossError

HOOKS = (
    "on_fit_start",
    "on_epoch_start",
    "on_train_loss",
    "on_train_batch_end",
    "on_train_epoch_end",
    "on_epoch_end",
    "on_fit_end",
)


class Callback:
    """Base class: every hook does nothing (the trainer only calls the hooks a callback overrides)."""

    def on_fit_start(self, trainer) -> None: ...

    def on_epoch_start(self, trainer, epoch: int) -> None: ...

    def on_train_loss(self, trainer, step: int, loss: torch.Tensor) -> None: ...

    def on_train_batch_end(self, trainer, step: int) -> None: ...

    def on_train_epoch_end(self, trainer, row: dict) -> None: ...

    def on_epoch_end(self, trainer, row: dict) -> None: ...

    def on_fit_end(self, trainer) -> None: ...


class NonFiniteGuard(Callback):
    """Stop with ``NonFiniteLossError`` when a step's loss, or an epoch's mean training loss, is NaN or inf.

    Steps are checked every step on a CPU and every 25th on a GPU (the check syncs the device); the
    epoch's mean catches what the sparse checks skip.
    """

    def on_train_loss(self, trainer, step: int, loss: torch.Tensor) -> None:
        check_every = 1 if trainer.fabric.device.type == "cpu" else 25
        if step % check_every == 0 and not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss became {loss.item()} at epoch {trainer.epoch + 1}, step {step + 1} "
                f"(lr {trainer.optimizer.param_groups[0]['lr']:.3g}). "
                "Training stopped; lower the learning rate, check the inputs, or use gradient clipping (grad_clip)."
            )

    def on_train_epoch_end(self, trainer, row: dict) -> None:
        if not math.isfinite(row["train_loss"]):
            raise NonFiniteLossError(f"the mean training loss of epoch {row['epoch']} is not finite; training stopped.")


class Checkpoint(Callback):
    """Resume from ``path`` when it exists (``resume``), and write it atomically after every epoch (rank 0)."""

    def __init__(self, path: str | os.PathLike, resume: bool = True):
        self.path, self.resume = Path(path), resume

    def on_fit_start(self, trainer) -> None:
        if self.resume and self.path.is_file():
            trainer.resume(self.path)

    def on_epoch_end(self, trainer, row: dict) -> None:
        if trainer.is_global_zero:
            trainer.save(self.path)


class OnEpoch(Callback):
    """Call ``fn(row)`` with each epoch's history row on rank 0 (after any ``Checkpoint`` listed before it)."""

    def __init__(self, fn: Callable[[dict], None]):
        self.fn = fn

    def on_epoch_end(self, trainer, row: dict) -> None:
        if trainer.is_global_zero:
            self.fn(row)


BATCH_BAR_MIN = 20  # an epoch of more batches than this gets its own bar (a long epoch never looks frozen)


class Progress(Callback):
    """Live bars (``tqdm.auto``: widgets in JupyterLab): one over the epochs, one over the batches of a long epoch.

    Quiet when ``enabled`` is false, on processes other than rank 0, and when ``TQDM_DISABLE=1`` (headless runs).
    """

    def __init__(self, enabled: bool = True, batch_bar_min: int = BATCH_BAR_MIN):
        self.enabled, self.batch_bar_min = enabled, batch_bar_min
        self.epochs = self.batches = None

    def quiet(self, trainer) -> bool:
        return not self.enabled or not trainer.is_global_zero or os.environ.get("TQDM_DISABLE") == "1"

    def on_epoch_start(self, trainer, epoch: int) -> None:
        quiet = self.quiet(trainer)
        if self.epochs is None:
            total, first = trainer.cfg.epochs, trainer.epoch
            self.epochs = tqdm(desc="epochs", total=total, initial=first, disable=quiet, leave=False)
        if trainer.steps_per_epoch > self.batch_bar_min:
            self.batches = tqdm(desc=f"epoch {epoch + 1}", total=trainer.steps_per_epoch, leave=False, disable=quiet)

    def on_train_batch_end(self, trainer, step: int) -> None:
        if self.batches is not None:
            self.batches.update()

    def on_train_epoch_end(self, trainer, row: dict) -> None:
        self._close_batches()

    def on_epoch_end(self, trainer, row: dict) -> None:
        self.epochs.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k.endswith("acc") or k == "train_loss"})
        self.epochs.update()

    def on_fit_end(self, trainer) -> None:
        self._close_batches()
        if self.epochs is not None:
            self.epochs.close()
            self.epochs = None

    def _close_batches(self) -> None:
        if self.batches is not None:
            self.batches.close()
            self.batches = None
