"""Reduced output stride: the last downsampling steps of a trunk set to stride 1 (a larger last feature map).

At 64 px a stride-32 network ends on a 2x2 map, so CAM, Grad-CAM and the spatial attentions act on four cells.
``set_output_stride(model, 8)`` turns the last two stride-2 steps of ``model.forward_features`` into stride-1
steps, so the same network ends on 8x8 cells at 64 px (as DeepLab's "output stride"; no dilation: the later
layers see a smaller receptive field relative to the map, the price of a cheap change that keeps every weight
and parameter name).

How it finds the steps, for any registered model: a forward pass of a 64 px dummy image records every
``Conv2d`` / ``MaxPool2d`` / ``AvgPool2d`` with stride > 1 and the resolution of its input; modules acting at
the same resolution (a block's strided conv and its strided shortcut) form one downsampling step. The last
``log2(stride / output_stride)`` steps are changed:

- a conv or pool with an odd kernel (3x3 pad 1, 1x1, 7x7 pad 3) gets stride 1 (same size out);
- a 2x2 stride-2 conv (patchify, ConvNeXt downsampling) gets stride 1 and one row / column of zeros on the
  bottom / right (a forward pre-hook: the weights and the state dict stay as they are);
- a 2x2 stride-2 pool becomes a 1x1 pool (the identity).

A second dummy pass checks the result: a model whose downsampling hides elsewhere (a functional call, as the
strided FCSA of ``acanet18``) raises ``ValueError`` instead of keeping a stride silently, and is left unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

PROBE_SIZE = 64  # dummy input side; stride-32 trunks end on 2x2 here
_STRIDED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _pad_right_bottom(module: nn.Module, args: tuple) -> tuple:
    return (F.pad(args[0], (0, 1, 0, 1)),) + tuple(args[1:])  # (B, C, H, W) -> (B, C, H+1, W+1)


@torch.no_grad()
def _probe(model: nn.Module, size: int = PROBE_SIZE) -> tuple[list[tuple[int, nn.Module]], int]:
    """(input height, module) of every strided module in call order, and the last map's height."""
    seen: list[tuple[int, nn.Module]] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: seen.append((args[0].shape[-2], mod)))
        for m in model.modules()
        if isinstance(m, _STRIDED) and max(_pair(m.stride)) > 1
    ]
    was_training = model.training
    try:
        model.eval()
        fmap = model.forward_features(torch.zeros(1, 3, size, size))  # (1, C, h, w)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return seen, fmap.shape[-2]


def output_stride(model: nn.Module, size: int = PROBE_SIZE) -> int:
    """Input side / last feature map side of ``model.forward_features`` (32 for a plain ResNet)."""
    return size // _probe(model, size)[1]


def _unstride(m: nn.Module):
    """Set ``m`` to stride 1 (see the module docstring); returns a function that undoes it."""
    old = (m.kernel_size, m.stride, m.padding)
    hook = None
    k = _pair(m.kernel_size)
    if isinstance(m, nn.Conv2d):
        m.stride = (1, 1)
        if k[0] % 2 == 0:  # 2x2 patch conv: keep H x W with one zero row / column
            hook = m.register_forward_pre_hook(_pad_right_bottom)
    elif k[0] % 2 == 0:  # 2x2 pool: the identity
        m.kernel_size, m.stride, m.padding = 1, 1, 0
    else:
        m.stride = 1

    def undo() -> None:
        m.kernel_size, m.stride, m.padding = old
        if hook is not None:
            hook.remove()

    return undo


def set_output_stride(model: nn.Module, target: int) -> nn.Module:
    """Make ``model.forward_features`` end at stride ``target`` (a power of 2 <= its current stride); in place.

    Returns the model. Raises ``ValueError`` when ``target`` is not reachable by removing whole downsampling steps.
    """
    seen, h = _probe(model)
    current = PROBE_SIZE // h
    if target == current:
        return model
    if target > current or target < 1 or target & (target - 1):
        raise ValueError(f"output_stride={target}: a power of 2 at most the model's stride {current}")
    steps = sorted({res for res, _ in seen}, reverse=True)  # input heights, largest first
    n = int(math.log2(current // target))
    if n > len(steps):
        raise ValueError(f"output_stride={target}: the model has only {len(steps)} downsampling steps")
    last = set(steps[-n:])
    undo = [_unstride(m) for res, m in seen if res in last]
    try:
        got = output_stride(model)
    except RuntimeError as e:  # e.g. a residual sum whose other branch downsamples in a functional call
        got = f"a failed forward pass ({str(e).splitlines()[0]})"
    if got != target:
        for u in undo:  # nothing half-changed: the model keeps its own stride
            u()
        raise ValueError(f"output_stride={target}: {type(model).__name__} ends at {got} after the change; "
                         "its downsampling is not all in Conv2d / MaxPool2d / AvgPool2d strides")
    return model
