"""GPU training throughput and model FLOP utilisation (MFU), ready for when a GPU is lent.

``python -m fgic bench gpu --device cuda [--peak-tflops 989]`` (about 5 minutes on an H100/H200) measures,
for ResNet50 at 224 px (batch 128) and ConvNeXt-S at 448 px (batch 32), bf16 autocast and channels_last,
without and with ``torch.compile``:

- ``fgic``: ``fgic.engine.fit`` epochs; ``plain``: a hand-written loop (``fgic.bench.engine.measure``,
  the two alternate in one process) over the same random tensors;
- MFU = achieved model FLOP/s / peak, with model FLOPs per image = 3 x the forward FLOPs of
  ``fgic.cost.complexity`` (FLOPs = 2 x MACs; backward ~ 2 x forward); peak: bf16 dense,
  989 TFLOP/s for an H100/H200 SXM (``peak_tflops``);
- the loader's img/s on real JPEGs (``fgic.bench.loader`` with workers from the cores) and, on CUDA,
  nvjpeg batch decoding + GPU resize (``decode_jpegs_on``).

It prints one table. ``tiny=True`` runs toy models at 32 px on any device without compile (CPU test).
"""

from __future__ import annotations

import time

import torch

from fgic.bench.engine import measure
from fgic.bench.loader import BATCH, find_images
from fgic.cost import complexity
from fgic.data.loading import RawBytes, collate_bytes, decode_jpegs_on, make_loader, resolve_workers
from fgic.models import create_model

PEAK_TFLOPS = 989.0  # bf16 dense, H100 / H200 SXM


def _gpu_decode_img_s(device: str, n: int, size: int) -> float:
    """img/s of reading JPEG bytes in workers, nvjpeg batch decoding and resizing on ``device``."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms.v2 import functional as TF

    samples = ImageFolder(str(find_images())).samples[:n]
    dl = make_loader(RawBytes(samples), BATCH, num_workers="auto", device=device, collate_fn=collate_bytes)
    for _ in range(2):  # the first epoch warms up workers and nvjpeg
        torch.cuda.synchronize()
        t0, seen = time.perf_counter(), 0
        for datas, _ in dl:
            imgs = decode_jpegs_on(device, datas)
            x = torch.stack([TF.resize(im, [size, size], antialias=True) for im in imgs])  # (B, 3, S, S) uint8
            x = x.float()
            seen += x.shape[0]
        torch.cuda.synchronize()
        rate = seen / (time.perf_counter() - t0)
    return rate


def main(device: str = "cpu", tiny: bool = False, peak_tflops: float = PEAK_TFLOPS) -> dict:
    if tiny:
        cases, steps, repeats, compiles = [("resnet18", 32, 4), ("convnext_atto", 32, 2)], 2, 1, (False,)
    else:
        cases, steps, repeats = [("resnet50", 224, 128), ("convnext_small", 448, 32)], 20, 3
        compiles = (False, True) if device == "cuda" else (False,)
    rows = []
    for name, size, batch in cases:
        fwd = complexity(create_model(name, 10), (3, size, size))["flops"]
        for comp in compiles:
            r = measure(name, size, device, batch, steps, repeats, compile=comp)
            for loop, img_s in (("fgic", r["engine_img_s"]), ("plain", r["bare_img_s"])):
                mfu = img_s * 3 * fwd / (peak_tflops * 1e12)
                rows.append((name, size, batch, comp, loop, img_s, mfu))
            rows[-2] += (r["engine_over_bare"]["median"],)
    prec = "bf16 autocast, channels_last" if device == "cuda" else "fp32 (CPU)"
    print(f"GPU benchmark on {device} ({prec}); MFU against a {peak_tflops:g} TFLOP/s peak")
    head = f"{'model':16s} {'px':>4s} {'batch':>5s} {'compile':>7s} {'loop':>6s} {'img/s':>9s} {'MFU':>7s}"
    print(head + f" {'fgic/plain time':>16s}")
    for row in rows:
        name, size, batch, comp, loop, img_s, mfu = row[:7]
        extra = f"{row[7]:16.3f}" if len(row) > 7 else ""
        print(f"{name:16s} {size:4d} {batch:5d} {comp!s:>7s} {loop:>6s} {img_s:9.1f} {mfu:7.2%} {extra}")
    out = {"rows": rows}
    from fgic.bench import loader

    w = resolve_workers("auto")
    lo = loader.main(device, tiny=tiny, workers=(0,) if tiny else (w,))
    out["loader_img_s"] = lo[f"w{0 if tiny else w}"]["fgic_img_s"]
    if device == "cuda" and not tiny:
        out["gpu_decode_img_s"] = _gpu_decode_img_s(device, 2048, 224)
        print(f"  gpu_decode_img_s = {out['gpu_decode_img_s']:.0f} (nvjpeg + GPU resize, workers read bytes)")
    return out
