"""fgic's training loop against timm's, same model, data, batch, optimiser, augmentation off.

timm side (the pieces of timm's ``train.py``): ``timm.data.ImageDataset`` over a class-folder tree,
``timm.data.create_loader(is_training=True, no_aug=True, use_prefetcher=False)``,
``timm.optim.create_optimizer_v2("sgd")``, ``nn.CrossEntropyLoss`` (train.py's loss without smoothing or
mixup) and train.py's step (forward, loss, zero_grad, backward, step). fgic side: ``fgic.engine.fit`` on
an ``ImageListDataset`` of the same files with ``build_transform("plain", train=False)`` (resize only),
the same SGD settings. Both train the same network, fgic's ``resnet18`` (the torchvision ResNet-18
architecture; the engine needs fgic's ``classify`` interface), from the same initial weights.
Data: 20 classes of the cub100 subset, ``PER_CLASS`` images each, at 112 px, batch 32.

The engine runs ``1 + REPEATS`` epochs and its ``on_epoch`` callback runs one timm epoch after each, so
they alternate in one process; ``fgic_over_timm_w{n}`` = fgic img/s / timm img/s (the median of the
paired epochs; target >= 1.0 with workers on).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import timm.data
import timm.optim
import torch
import torch.nn as nn

from fgic.bench._timing import fmt_ratio, ratio_stats
from fgic.bench.loader import find_images
from fgic.data.base import ImageListDataset
from fgic.data.transforms import build_transform
from fgic.engine import TrainConfig, fit
from fgic.losses import create_loss
from fgic.models import create_model

CLASSES = 20
PER_CLASS = 16
SIZE = 112
BATCH = 32
REPEATS = 3
TARGET = 1.0


def _subset(images: Path, tmp: Path, classes: int, per_class: int) -> list[tuple[str, int]]:
    """Symlink ``per_class`` images of the first ``classes`` class folders into ``tmp``; (path, label)."""
    samples = []
    for label, folder in enumerate(sorted(p for p in images.iterdir() if p.is_dir())[:classes]):
        (tmp / folder.name).mkdir()
        for f in sorted(folder.glob("*.jpg"))[:per_class]:
            link = tmp / folder.name / f.name
            os.symlink(f, link)
            samples.append((str(link), label))
    return samples


def _timm_epoch(model, loader, loss_fn, opt, device) -> tuple[float, int]:
    model.train()
    t0, n = time.perf_counter(), 0
    for x, y in loader:  # timm train.py's train_one_epoch without prefetcher, AMP or EMA
        x, y = x.to(device), y.to(device)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += x.shape[0]
    return time.perf_counter() - t0, n


def measure(workers: int, device: str = "cpu", classes=CLASSES, per_class=PER_CLASS, size=SIZE, repeats=REPEATS):
    with tempfile.TemporaryDirectory() as tmp:
        samples = _subset(find_images(), Path(tmp), classes, per_class)
        torch.manual_seed(0)
        model = create_model("resnet18", classes)
        ref = create_model("resnet18", classes).to(device)
        ref.load_state_dict(model.state_dict())
        tds = timm.data.ImageDataset(tmp)
        tloader = timm.data.create_loader(
            tds,
            (3, size, size),
            BATCH,
            is_training=True,
            no_aug=True,
            use_prefetcher=False,
            num_workers=workers,
            persistent_workers=workers > 0,
            device=torch.device(device),
            crop_pct=1.0,
        )
        opt = timm.optim.create_optimizer_v2(ref, "sgd", lr=0.01, momentum=0.9, weight_decay=0.0)
        loss_fn = nn.CrossEntropyLoss()
        _timm_epoch(ref, tloader, loss_fn, opt, device)  # warm-up
        timm_runs: list[tuple[float, int]] = []
        ds = ImageListDataset(samples, tds.reader.class_to_idx, transform=build_transform("plain", False, size))
        cfg = TrainConfig(
            epochs=1 + repeats,
            batch_size=BATCH,
            lr=0.01,
            momentum=0.9,
            weight_decay=0.0,
            schedule="none",
            accelerator=device,
            num_workers=workers,
            eval_test=False,
        )
        res = fit(
            model,
            create_loss("ce", classes),
            ds,
            cfg=cfg,
            progress=False,
            on_epoch=lambda row: timm_runs.append(_timm_epoch(ref, tloader, loss_fn, opt, device)),
        )
    steps = len(samples) // BATCH
    fgic_s = [row["seconds"] for row in res["history"]][1:]  # epoch 1: the engine's warm-up
    timm_s = [s * steps * BATCH / n for s, n in timm_runs[1:]]  # same images per epoch
    st = ratio_stats(timm_s, fgic_s)  # fgic img/s / timm img/s
    return {"fgic_img_s": steps * BATCH / min(fgic_s), "timm_img_s": steps * BATCH / min(timm_s), "ratio": st}


def main(device: str = "cpu", tiny: bool = False, workers: tuple[int, ...] | None = None) -> dict:
    kw = dict(classes=2, per_class=BATCH // 2 + 1, size=32, repeats=1) if tiny else {}
    workers = workers if workers is not None else ((0,) if tiny else (0, 2))
    print(f"timm comparison on {device}: resnet18, {CLASSES} cub100 classes, {SIZE} px, batch {BATCH}")
    out = {}
    for w in workers:
        r = measure(w, device, **kw)
        out[f"w{w}"] = r
        out[f"fgic_over_timm_w{w}"] = r["ratio"]["median"]
        print(f"  {w} workers: fgic {r['fgic_img_s']:.1f} img/s, timm {r['timm_img_s']:.1f} img/s (best epochs)")
        print("    " + fmt_ratio(f"fgic_over_timm_w{w}", r["ratio"], f">= {TARGET}" if w else ""))
    return out
