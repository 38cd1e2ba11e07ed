"""Overhead of ``fgic.engine.fit`` against a bare PyTorch loop, resolved to about 1 %.

Both train the same architecture (same initial weights) with SGD on the same random tensors through a
``DataLoader`` (0 workers). The engine runs ``1 + REPEATS`` epochs of ``STEPS`` steps; its first epoch
is the warm-up, and after every epoch its ``on_epoch`` callback runs one epoch of the bare loop, so the
two alternate in the same process: fgic, bare, fgic, bare, ... Each repeat gives one paired ratio
``engine_over_bare = engine epoch seconds / bare epoch seconds``; the median and spread are printed.
Target: at most 1.03 on CPU (ResNet18 at 64 px, batch 32).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from fgic.bench._timing import fmt_ratio, ratio_stats, sync
from fgic.engine import TrainConfig, fit
from fgic.losses import create_loss
from fgic.models import create_model

TARGET = 1.03
STEPS = 50  # timed steps per epoch
REPEATS = 7  # paired epochs (engine, bare)


def _bare_epoch(model, opt, loader, device, channels_last) -> float:
    model.train()
    sync(device)
    t0 = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - t0


def measure(
    name: str,
    size: int,
    device: str = "cpu",
    batch: int = 32,
    steps: int = STEPS,
    repeats: int = REPEATS,
    compile: bool = False,
):
    """Alternate engine and bare epochs of ``steps`` steps; img/s and the paired ratio (bf16 on CUDA)."""
    num_classes = 10
    torch.manual_seed(0)
    n = batch * steps
    ds = TensorDataset(torch.randn(n, 3, size, size), torch.randint(0, num_classes, (n,)))  # (N, 3, H, W)
    loader = DataLoader(ds, batch, shuffle=True, drop_last=True)
    cl = device == "cuda"
    model = create_model(name, num_classes)
    bare = create_model(name, num_classes)
    bare.load_state_dict(model.state_dict())
    bare = bare.to(device)
    if cl:
        bare = bare.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(bare.parameters(), lr=0.01, momentum=0.9)
    if compile:
        bare = torch.compile(bare)
    _bare_epoch(bare, opt, loader, device, cl)  # warm-up
    bare_s: list[float] = []

    def after_engine_epoch(row):
        bare_s.append(_bare_epoch(bare, opt, loader, device, cl))

    cfg = TrainConfig(
        epochs=1 + repeats,
        batch_size=batch,
        lr=0.01,
        schedule="none",
        weight_decay=0.0,
        accelerator=device,
        eval_test=False,
        seed=0,
        compile=compile,
    )
    res = fit(model, create_loss("ce", num_classes), ds, cfg=cfg, progress=False, on_epoch=after_engine_epoch)
    eng_s = [row["seconds"] for row in res["history"]][1:]  # epoch 1 is the engine's warm-up
    st = ratio_stats(eng_s, bare_s[1:])
    return {
        "model": name,
        "size": size,
        "batch": batch,
        "steps": steps,
        "bare_img_s": n / min(bare_s[1:]),
        "engine_img_s": n / min(eng_s),
        "engine_over_bare": st,
    }


def main(device: str = "cpu", tiny: bool = False) -> dict:
    name, size, batch = ("resnet18", 32, 4) if tiny else ("resnet18", 64, 32)
    if device == "cuda" and not tiny:
        size, batch = 224, 64
    steps, repeats = (2, 2) if tiny else (STEPS, REPEATS)
    print(f"engine benchmark on {device} (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    r = measure(name, size, device, batch, steps, repeats)
    print(f"  {name} at {size} px, batch {batch}, {steps} steps per epoch, {repeats} paired epochs")
    print(f"  bare {r['bare_img_s']:.1f} img/s, engine {r['engine_img_s']:.1f} img/s (best epochs)")
    print("  " + fmt_ratio("engine_over_bare", r["engine_over_bare"], f"<= {TARGET}"))
    return {**r, "engine_over_bare_stats": r["engine_over_bare"], "engine_over_bare": r["engine_over_bare"]["median"]}
