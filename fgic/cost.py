"""Model cost: parameter counts, FLOPs and inference latency (formerly ``fgic.profile``, now a deprecated shim).

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode``, which reports 2 x MACs for
convolutions and matrix products (one multiply and one add per MAC); ``macs`` is simply ``flops // 2``.
Papers usually quote "FLOPs" that are really MACs (e.g. ResNet-50 at 224 px: "4.1 GFLOPs" = 4.1 G MACs),
so compare a paper's number against ``gmacs`` unless the paper says otherwise.

Choices: only the operators FlopCounterMode knows are counted (conv, matmul/linear, attention via sdpa,
batched matmul); BatchNorm, activations, pooling, bias additions and element-wise ops are not, which is
the usual convention of the papers' tables. Counting runs at batch 1 in eval mode under ``no_grad``, and
the model's training flag is restored afterwards.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["complexity", "inference_time", "params"]


def params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    if p is None:
        p = next(model.buffers(), None)
    return p.device if p is not None else torch.device("cpu")


def _dummy(model: nn.Module, input_size: Sequence[int], batch: int) -> torch.Tensor:
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    return torch.randn(batch, *input_size, device=_device(model), dtype=dtype)  # (B, C, H, W)


def complexity(model: nn.Module, input_size: Sequence[int] = (3, 224, 224)) -> dict:
    """Parameters and FLOPs of one forward pass on a single ``input_size`` image.

    Returns ``dict(params=int, flops=int, gflops=float, macs=int, gmacs=float)`` with FLOPs = 2 x MACs.
    """
    was_training = model.training
    x = _dummy(model, input_size, batch=1)  # (1, C, H, W)
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    flops = int(counter.get_total_flops())
    return dict(
        params=params(model), flops=flops, gflops=flops / 1e9, macs=flops // 2, gmacs=flops / 2e9
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def inference_time(
    model: nn.Module,
    input_size: Sequence[int] = (3, 224, 224),
    batch: int = 1,
    repeats: int = 20,
    warmup: int = 3,
) -> dict:
    """Wall-clock latency of ``model(x)`` in eval mode under ``no_grad`` on the model's own device.

    CUDA work is synchronised before each clock read. Returns milliseconds per forward pass
    (``median_ms``, ``mean_ms``, ``min_ms``, ``std_ms``), images per second at the median, and the
    settings used (``batch``, ``repeats``, ``device``). The training flag is restored afterwards.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    device = _device(model)
    x = _dummy(model, input_size, batch)  # (B, C, H, W)
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.no_grad():
            for _ in range(warmup):
                model(x)
            _sync(device)
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(x)
                _sync(device)
                times.append((time.perf_counter() - t0) * 1e3)
    finally:
        model.train(was_training)
    median = statistics.median(times)
    return dict(
        median_ms=median,
        mean_ms=statistics.fmean(times),
        min_ms=min(times),
        std_ms=statistics.stdev(times) if len(times) > 1 else 0.0,
        images_per_s=batch * 1e3 / median if median > 0 else float("inf"),
        batch=batch,
        repeats=repeats,
        device=str(device),
    )
