"""Data loading of real JPEGs: fgic's pipeline against torchvision ``ImageFolder``, same transforms.

Both read the same CUB images (the cub100 subset under ``shared/data``, or ``$FGIC_DATA``'s
CUB_200_2011) and produce the same normalised float ``(3, 224, 224)`` batches (the ``acanet`` preset's
evaluation transform: square resize with antialias, then normalisation), through a ``DataLoader`` with
the same batch size and workers:

- ``fgic``: ``ImageListDataset`` + ``build_transform`` (``decode_jpeg``, uint8 resize, fused normalise);
- ``torchvision``: ``ImageFolder`` (PIL) + the same steps as a ``v2.Compose`` (ToImage, RGB, Resize,
  ToDtype, Normalize), the usual torchvision form; ``loader_ratio_w{n}`` = fgic img/s / torchvision img/s;
- ``cached``: fgic's ``ResizedCache`` (decoded and resized once), for repeated epochs.

With 0 workers everything runs in this process on one thread: that img/s is the per-core rate (target
ratio >= 1.3), and ``cores_for_3000_img_s`` = 3000 / fgic's per-core rate. Epochs alternate between
the contenders; the median of ``REPEATS`` paired ratios is printed with its spread.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import torch
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from fgic.bench._timing import fmt_ratio, ratio_stats
from fgic.data.base import ImageListDataset
from fgic.data.loading import ResizedCache, available_cores, make_loader
from fgic.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform

SIZE = 224
BATCH = 32
IMAGES = 640  # images per epoch
REPEATS = 3
TARGET = 1.3
FEED = 3000  # img/s an H100 trains ResNet50 at 224 px


def find_images() -> Path:
    """The ``images`` folder of CUB-200-2011: ``$FGIC_DATA`` first, then the shared cub100 subset."""
    roots = [Path(os.environ["FGIC_DATA"])] if os.environ.get("FGIC_DATA") else []
    roots.append(Path(__file__).resolve().parents[3] / "shared" / "data" / "cub100")
    for r in roots:
        if (r / "CUB_200_2011" / "images").is_dir():
            return r / "CUB_200_2011" / "images"
    raise FileNotFoundError(f"no CUB_200_2011/images under {[str(r) for r in roots]}; set FGIC_DATA")


def _epoch(loader) -> float:
    t0 = time.perf_counter()
    n = 0
    for x, _ in loader:
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def main(device: str = "cpu", tiny: bool = False, workers: tuple[int, ...] | None = None) -> dict:
    n_img, size, repeats = (16, 32, 1) if tiny else (IMAGES, SIZE, REPEATS)
    workers = workers if workers is not None else ((0,) if tiny else (0, 2))
    tv = ImageFolder(
        str(find_images()),
        transform=v2.Compose(
            [
                v2.ToImage(),
                v2.RGB(),
                v2.Resize((size, size), antialias=True),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        ),
    )
    step = max(1, len(tv.samples) // n_img)  # spread over the classes
    tv.samples = tv.imgs = tv.samples[::step][:n_img]
    tv.targets = [s[1] for s in tv.samples]
    ours = ImageListDataset(list(tv.samples), tv.classes, transform=build_transform("acanet", False, image_size=size))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 0 workers = one core
    out: dict = {"images": len(ours), "size": size, "cores": available_cores()}
    print(f"loader benchmark: {len(ours)} CUB JPEGs -> {size} px, batch {BATCH}, {available_cores()} cores available")
    try:
        for w in workers:
            loaders = {
                name: make_loader(ds, BATCH, num_workers=w, device=device, prefetch_factor=2)
                for name, ds in (("fgic", ours), ("torchvision", tv))
            }
            for dl in loaders.values():
                _epoch(dl)  # warm-up: starts the persistent workers, fills the page cache
            rates: dict[str, list[float]] = {name: [] for name in loaders}
            for _ in range(repeats):
                for name, dl in loaders.items():
                    rates[name].append(_epoch(dl))
            st = ratio_stats([1 / r for r in rates["torchvision"]], [1 / r for r in rates["fgic"]])
            med = {name: sorted(r)[len(r) // 2] for name, r in rates.items()}
            out[f"w{w}"] = {"fgic_img_s": med["fgic"], "torchvision_img_s": med["torchvision"], "ratio": st}
            out[f"loader_ratio_w{w}"] = st["median"]
            print(
                f"  {w} workers: fgic {med['fgic']:.0f} img/s, torchvision ImageFolder {med['torchvision']:.0f} img/s"
            )
            print("    " + fmt_ratio(f"loader_ratio_w{w}", st, f">= {TARGET} per core" if w == 0 else ""))
            del loaders
        if 0 in workers:
            per_core = out["w0"]["fgic_img_s"]
            out["cores_for_3000_img_s"] = math.ceil(FEED / per_core)
            print(f"  cores_for_3000_img_s = {out['cores_for_3000_img_s']} (fgic at {per_core:.0f} img/s per core)")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            cached = ResizedCache(ours, size, tmp, transform=build_transform("acanet", False, image_size=size))
            build_s = time.perf_counter() - t0
            dl = make_loader(cached, BATCH, num_workers=0)
            rate = max(_epoch(dl) for _ in range(repeats))
            out["cached_img_s"] = rate
            print(
                f"  cached (ResizedCache, 0 workers): {rate:.0f} img/s after a {build_s:.1f} s build; "
                f"disk {cached.nbytes / 2**20:.1f} MiB = {cached.nbytes / len(cached) / 1e3:.0f} kB per image"
            )
    finally:
        torch.set_num_threads(threads)
    return out
