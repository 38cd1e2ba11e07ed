"""Cost of notebook 06's paper-profile rows on one device, and what the paper grid would take there.

``python -m fgic bench cross --device cuda`` builds every row of ``06_cross_paper_study``'s paper profile
(``study_resnet50`` with each registered attention module, the MC-loss row and GHOLM-Net on ResNet-50; 200
classes, 448 px, random weights) and times each with ``fgic.experiments.cross_study.measure``, all in this process:

- **train img/s**: forward + backward + SGD step at the paper's batch (32), as trained (ACCB's three branches,
  GHOLM's three branches and SupCon), bf16 autocast and channels-last on CUDA (the engine's ``precision="auto"``);
- **infer img/s**: the deployed network (``fgic.models.reparameterize``: ACCB fused), same batch and precision;
- params and GMACs of one image (``fgic.cost.complexity``); each rate also as a ratio to the ``none`` row;
- **GPU hours**: seeds x epochs x CUB's 5,994 training images / train img/s per row, summed over the grid (the
  paper profile's ``train`` settings). A lower bound: it leaves out data loading (``python -m fgic bench
  loader``), evaluation and Grad-CAM scoring.

``tiny=True`` times the smoke profile's rows at 32 px on the CPU (a test that every row builds and steps).
"""

from __future__ import annotations

import time

import torch

CUB_TRAIN = 5994  # images in CUB-200-2011's official training split
CUB_CLASSES = 200


def main(device: str = "cpu", tiny: bool = False, batch: int | None = None, repeats: int | None = None) -> dict:
    from fgic.experiments import cross_study as cs
    from fgic.profiles import settings

    S = settings(cs.NOTEBOOK, "smoke" if tiny else "paper")
    size, k = (32, 10) if tiny else (S.image_size, CUB_CLASSES)
    batch = batch or (2 if tiny else int(S.train.get("batch_size", 32)))
    repeats = repeats or (1 if tiny else 10)
    warmup = 1 if tiny else 3
    bf16 = torch.device(device).type == "cuda"
    if bf16:
        torch.backends.cudnn.benchmark = True
    print(f"notebook 06 cost on {device} ({'bf16 autocast, ' if bf16 else ''}channels-last), {size} px, {k} classes, "
          f"batch {batch}, median of {repeats} timed batches (torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads)")
    rows = {}
    t0 = time.perf_counter()
    for r in cs.rows(S):
        sp = cs.spec(S, r, S.seeds[0])
        rows[r] = cs.measure(sp, k, size, batch, repeats, warmup, device, bf16=bf16)
        if device.startswith("cuda"):
            rows[r]["peak GiB"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.empty_cache()
    base = rows.get(cs.BASELINE)
    epochs, seeds = int(S.train.get("epochs", 1)), len(S.seeds)
    head = (f"{'row':14s} {'params M':>8s} {'GMACs':>7s} {'train img/s':>11s} {'x none':>6s} {'infer img/s':>11s} "
            f"{'x none':>6s} {'GPU h':>6s}")
    print(head)
    total_h = 0.0
    for r, v in rows.items():
        hours = seeds * epochs * CUB_TRAIN / v["train img/s"] / 3600
        v["GPU hours"] = hours
        total_h += hours
        tr = v["train img/s"] / base["train img/s"] if base else float("nan")
        inf = v["infer img/s"] / base["infer img/s"] if base else float("nan")
        v["train_over_none"], v["infer_over_none"] = tr, inf
        print(f"{r:14s} {v['params (M)']:8.1f} {v['GMACs']:7.2f} {v['train img/s']:11.1f} {tr:6.2f} "
              f"{v['infer img/s']:11.1f} {inf:6.2f} {hours:6.2f}")
    print(f"paper grid: {len(rows)} rows x {seeds} seeds x {epochs} epochs x {CUB_TRAIN} images: "
          f"{total_h:.1f} GPU hours at these step rates (no loading, evaluation or Grad-CAM); "
          f"measured in {time.perf_counter() - t0:.0f} s")
    return {"rows": rows, "grid_gpu_hours": total_h, "batch": batch, "size": size}
