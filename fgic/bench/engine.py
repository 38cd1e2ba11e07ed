"""Training throughput of the engine, and its overhead against a bare PyTorch loop.

For each (model, resolution): images/s of

- ``bare``: a hand-written loop (forward, cross-entropy, backward, SGD step) over a shuffled
  ``DataLoader`` of random tensors;
- ``engine``: ``fgic.engine.fit`` over the same tensors (Fabric, history, NaN guard), epoch time only;
- ``end_to_end``: ``fit`` over the embedded benchmark with its transforms and data loader.

``overhead = engine seconds / bare seconds - 1`` on the same model, batch and number of steps (target:
at most 5 %). Bare and engine passes alternate, and each figure is the best of ``repeats``, so a busy
machine disturbs both alike.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from fgic.engine import TrainConfig, fit
from fgic.losses import create_loss
from fgic.models import create_model


def _bare_epoch(model, opt, batches, device, channels_last) -> float:
    model.train()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def measure(
    name: str, size: int, device: str = "cpu", batch: int = 32, steps: int = 6, repeats: int = 3, num_classes: int = 10
) -> dict:
    torch.manual_seed(0)
    n = batch * steps
    x, y = torch.randn(n, 3, size, size), torch.randint(0, num_classes, (n,))
    ds = TensorDataset(x, y)
    batches = DataLoader(ds, batch, shuffle=True, drop_last=True)  # the same loading work as the engine's
    cl = device == "cuda"
    cfg = TrainConfig(
        epochs=2, batch_size=batch, lr=0.01, schedule="none", weight_decay=0.0, accelerator=device, eval_test=False
    )

    bare, eng = [], []
    for _ in range(repeats):
        model = create_model(name, num_classes).to(device)
        if cl:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        _bare_epoch(model, opt, batches, device, cl)  # warm-up epoch, as the engine's first
        bare.append(_bare_epoch(model, opt, batches, device, cl))
        model = create_model(name, num_classes)
        res = fit(model, create_loss("ce", num_classes), ds, cfg=cfg, progress=False)
        eng.append(res["history"][-1]["seconds"])  # second epoch: warm
    out = {
        "model": name,
        "size": size,
        "device": device,
        "batch": batch,
        "bare_img_s": n / min(bare),
        "engine_img_s": n / min(eng),
        "overhead": min(eng) / min(bare) - 1,
    }
    return out


def end_to_end(name: str, size: int, device: str = "cpu", batch: int = 32, per_class: int = 24) -> dict:
    from fgic.data import build_dataset
    from fgic.data.transforms import build_transform

    ds = build_dataset(
        "synthetic",
        split="train",
        transform=build_transform("plain", train=True, image_size=size),
        num_classes=8,
        images_per_class=per_class,
        image_size=size,
    )
    cfg = TrainConfig(epochs=2, batch_size=batch, lr=0.01, schedule="none", accelerator=device, eval_test=False)
    res = fit(create_model(name, len(ds.classes)), create_loss("ce", len(ds.classes)), ds, cfg=cfg, progress=False)
    steps = len(ds) // batch
    return {"model": name, "size": size, "end_to_end_img_s": steps * batch / res["history"][-1]["seconds"]}


def main(device: str = "cpu") -> dict:
    cases = [("resnet18", 64), ("resnet18", 112), ("convnext_atto", 64)]
    if device == "cuda":
        cases += [("resnet18", 224), ("resnet50", 224), ("convnext_tiny", 224)]
    print(f"engine benchmark on {device} (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(
        f"{'model':16s} {'px':>4s} {'bare img/s':>11s} {'engine img/s':>13s} {'overhead':>9s} {'end-to-end img/s':>17s}"
    )
    rows = []
    for name, size in cases:
        r = measure(name, size, device, batch=64 if device == "cuda" else 32, steps=20 if device == "cuda" else 6)
        r.update(end_to_end(name, size, device))
        rows.append(r)
        print(
            f"{name:16s} {size:4d} {r['bare_img_s']:11.1f} {r['engine_img_s']:13.1f} {r['overhead']:+9.1%} "
            f"{r['end_to_end_img_s']:17.1f}"
        )
    worst = max(r["overhead"] for r in rows)
    print(f"engine_overhead_max = {worst:+.1%} (target <= +5 %)")
    return {"rows": rows, "engine_overhead_max": worst}
