"""Side-by-side timing for the benchmarks: blocks of steps alternate between the contenders, repeated.

A busy spell on a shared machine then hits every contender alike, and the ratio of each repeat's blocks
is a paired measurement; the median over repeats is reported with its spread (min, max).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def sync(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def alternate(
    fns: dict[str, Callable[[], object]], steps: int, repeats: int, warmup: int = 2, device: str = "cpu"
) -> dict[str, list[float]]:
    """Seconds per step of each ``fns[name]()``: per repeat, one block of ``steps`` calls per contender.

    Every contender first runs ``warmup`` untimed calls. Returns ``{name: [s/step of each repeat]}``.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            sync(device)
            out[name].append((time.perf_counter() - t0) / steps)
    return out


def ratio_stats(num: list[float], den: list[float]) -> dict:
    """Median and (min, max) of the per-repeat ratios ``num[i] / den[i]``."""
    r = [a / b for a, b in zip(num, den, strict=True)]
    return {"median": statistics.median(r), "min": min(r), "max": max(r), "repeats": len(r)}


def fmt_ratio(name: str, st: dict, target: str = "") -> str:
    t = f"  (target {target})" if target else ""
    return f"{name} = {st['median']:.3f}  [min {st['min']:.3f}, max {st['max']:.3f}, {st['repeats']} repeats]{t}"
