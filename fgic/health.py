"""Is a finished run a result, or a failed seed? Divergence and collapse detection from a run record.

A run that diverged (a non-finite loss) or collapsed (accuracy at chance once warm-up is over) is a
failed seed: tables and plots show it as failed, with the reason, and never as a number
(``fgic.viz.paper_vs_ours(..., health=True)``, ``fgic.viz.plot_ablation(..., failed=...)``).

``run_health(record)`` reads only what every record holds (``status``, ``history``, ``metrics``,
``num_classes``), so it also works on records written before this module existed:

1. ``status`` other than ``"finished"`` (failed, interrupted, running): failed, with the stored error;
2. a non-finite ``train_loss`` (or any non-finite accuracy) in any epoch of ``history``: diverged;
3. after warm-up (more than ``warmup`` epochs trained), the final accuracy (``metrics["test_top1"]``, else
   ``val_top1``, else the last ``test_acc`` / ``val_acc`` of ``history``) at or below chance + ``margin``
   with chance = 1 / ``num_classes``: collapsed. Runs of ``warmup`` epochs or fewer are never called
   collapsed (a 1-epoch smoke run near chance has not had a chance to learn);
4. after ``LEARN_EPOCHS`` epochs or more, a final accuracy below ``learn_threshold(K)`` (5 x chance, capped at
   halfway from chance to 100 % below 9 classes): did not learn. Such a seed is reported as failed with its
   accuracy, not averaged into a row as if the model had learned. Runs of the smoke profile (record ``group``
   "smoke", 1-2 epochs on a tiny benchmark) are exempt: they check code paths, not learning.

Choice: ``margin`` is 2 points of accuracy by default. At chance a test set of n images has a standard
deviation of sqrt(p (1 - p) / n) (1.2 points for p = 0.1, n = 600), so a run within 2 points of chance
has not shown that it learned anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

WARMUP_EPOCHS = 1  # epochs after which accuracy at chance counts as a collapse
CHANCE_MARGIN = 0.02  # accuracy (fraction) above chance still counted as chance
LEARNS = 5  # a run "learned" when its final accuracy reaches LEARNS x chance (see learn_threshold)
LEARN_EPOCHS = 2  # runs of at least this many epochs (outside the smoke profile) must have learned


def learn_threshold(k: int) -> float:
    """The accuracy (fraction) a run must reach to count as learning: ``LEARNS`` x chance, capped at halfway
    from chance to 100 % (the cap applies below 9 classes; 5 x chance is 100 % or more with 5 classes or fewer)."""
    return min(LEARNS / k, (1 + 1 / k) / 2)


def _as_dict(record) -> dict:
    if isinstance(record, Mapping):
        return dict(record)
    if hasattr(record, "to_dict"):
        return dict(record.to_dict())
    return {
        k: getattr(record, k) for k in ("status", "history", "metrics", "num_classes", "error") if hasattr(record, k)
    }


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def final_accuracy(record) -> tuple[str, float] | None:
    """``(name, value)`` of the run's final accuracy: ``test_top1``, ``val_top1`` or the last history entry."""
    rec = _as_dict(record)
    metrics = rec.get("metrics") or {}
    for k in ("test_top1", "val_top1"):
        if metrics.get(k) is not None:
            return k, float(metrics[k])
    for k in ("test_acc", "val_acc"):
        vals = [h[k] for h in rec.get("history") or [] if h.get(k) is not None]
        if vals:
            return k, float(vals[-1])
    return None


def run_health(
    record, warmup: int = WARMUP_EPOCHS, margin: float = CHANCE_MARGIN, num_classes: int | None = None
) -> tuple[bool, str]:
    """``(ok, reason)`` for a run record; ``reason`` is "" when ``ok``. ``None`` (no record) is "not run"."""
    if record is None:
        return False, "not run"
    rec = _as_dict(record)
    status = rec.get("status", "finished")
    if status != "finished":
        err = rec.get("error")
        return False, f"status {status}" + (f" ({err})" if err else "")
    history = rec.get("history") or []
    for h in history:
        for k in ("train_loss", "train_acc", "val_acc", "test_acc"):
            if k in h and h[k] is not None and not _finite(h[k]):
                return False, f"diverged: {k} = {h[k]} at epoch {h.get('epoch', '?')}"
    acc = final_accuracy(rec)
    if acc is not None and not _finite(acc[1]):
        return False, f"diverged: {acc[0]} = {acc[1]}"
    k = num_classes or rec.get("num_classes")
    if acc is None or not k or len(history) <= warmup:
        return True, ""
    chance = 1.0 / int(k)
    if acc[1] <= chance + margin:
        return False, (
            f"collapsed: {acc[0]} {100 * acc[1]:.1f} % <= chance {100 * chance:.1f} % "
            f"+ {100 * margin:.0f} after {len(history)} epochs"
        )
    if rec.get("group") != "smoke" and len(history) >= LEARN_EPOCHS and acc[1] < learn_threshold(int(k)):
        return False, (
            f"did not learn: {acc[0]} {100 * acc[1]:.1f} % < {LEARNS} x chance ({100 * learn_threshold(int(k)):.1f} %) "
            f"after {len(history)} epochs"
        )
    return True, ""


def failed_runs(records: Mapping, **kw) -> dict[str, str]:
    """``{name: reason}`` of the records in ``{name: record}`` that ``run_health`` calls failed."""
    out = {}
    for name, rec in records.items():
        ok, reason = run_health(rec, **kw)
        if not ok:
            out[name] = reason
    return out
