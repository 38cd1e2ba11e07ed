"""The input pipeline for real images: fast JPEG decoding, the data loader's settings, a resized cache.

- ``read_rgb(path)``: a JPEG's bytes decoded by ``torchvision.io.decode_jpeg`` (libjpeg-turbo, straight
  into a uint8 ``(3, H, W)`` tensor); other formats, and JPEGs it cannot read, through PIL (``load_rgb``,
  alpha composited on white). ``ImageListDataset`` uses it when its transform is an ``ImagePipeline``.
- ``decode_jpegs_on(device, datas)``: a batch of JPEG byte tensors decoded on the GPU (nvjpeg), for a
  loader whose workers only read files (``RawBytes``); used by ``python -m fgic bench gpu``.
- ``make_loader(ds, batch_size, ...)``: a ``DataLoader`` with workers from the available cores
  (``num_workers="auto"``), persistent workers when there are any, and pinned memory on CUDA.
- ``ResizedCache``: decodes and resizes every image once into a uint8 memory-mapped file, so later epochs
  skip decoding and resizing. Disk cost: N x 3 x S x S bytes (CUB-200-2011 train, 5,994 images at 224
  px: 0.90 GB; at 510 px for GHOLM: 4.7 GB); it pays off from the second epoch on.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np
import torch
import torchvision.io as tio
from torch.utils.data import DataLoader, Dataset, Sampler

from fgic.data.base import read_rgb

__all__ = ["read_rgb", "make_loader", "resolve_workers", "available_cores", "ResizedCache", "RawBytes"]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask: a container's or a Slurm job's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(num_workers: int | str) -> int:
    """``"auto"`` (or -1): one worker per available core but one (the main process trains); else the int."""
    if num_workers in ("auto", -1):
        return max(0, available_cores() - 1)
    n = int(num_workers)
    if n < 0:
        raise ValueError(f"num_workers must be >= 0 or 'auto', got {num_workers!r}")
    return min(n, available_cores())  # more workers than cores only thrash (8 asked on 2 cores: 2)


class EpochTagged(Sampler):
    """Yields ``(epoch, index)`` from ``sampler`` (its ``epoch`` attribute, set by ``set_epoch``)."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler

    def __iter__(self):
        epoch = int(getattr(self.sampler, "epoch", 0))
        return ((epoch, int(i)) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class SeededItems(Dataset):
    """``ds[i]`` with every random stream seeded from ``(seed, epoch, i)`` first.

    Persistent workers are seeded once per run, so their augmentation streams would not restart at an
    epoch boundary and a resumed run would draw other augmentations than an uninterrupted one. Seeding
    per item makes each image's augmentation a function of (seed, epoch, index) alone: the same for any
    number of workers, persistent or not, and across a resume.
    """

    def __init__(self, ds: Dataset, seed: int):
        self.ds, self.seed = ds, seed

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int]):
        epoch, i = key
        s = (self.seed * 1_000_003 + epoch * 7_919 + i * 104_729) % (2**31)
        torch.manual_seed(s)
        np.random.seed(s)
        random.seed(s)
        return self.ds[i]


def make_loader(
    ds: Dataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    sampler: Sampler | None = None,
    num_workers: int | str = "auto",
    device: str | torch.device = "cpu",
    drop_last: bool = False,
    prefetch_factor: int = 4,
    collate_fn=None,
    seed: int | None = None,
) -> DataLoader:
    """A ``DataLoader`` set up for throughput: workers from the cores, persistent, pinned on CUDA.

    ``seed`` (training loaders, with a ``sampler`` that has ``set_epoch``): with workers, every item's
    random streams are seeded from ``(seed, epoch, index)`` (``SeededItems``), so augmentation does not
    depend on the workers and a resumed run is exact. Without workers the main process's per-epoch seeding
    (``fgic.engine.seed_epoch``) already does that, and nothing is wrapped.
    """
    workers = resolve_workers(num_workers)
    kw = dict(persistent_workers=True, prefetch_factor=prefetch_factor) if workers > 0 else {}
    if workers > 0 and seed is not None and sampler is not None:
        ds, sampler = SeededItems(ds, seed), EpochTagged(sampler)
        # the workers' base seed is drawn once (persistent workers) from this generator, not from the
        # global stream, which would then be one draw off in the first epoch after a resume
        kw["generator"] = torch.Generator().manual_seed(seed)
    return DataLoader(
        ds,
        batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=torch.device(device).type == "cuda",
        collate_fn=collate_fn,
        **kw,
    )


class RawBytes(Dataset):
    """Items ``(uint8 byte tensor of the file, label)`` from ``samples = [(path, label), ...]``."""

    def __init__(self, samples: list[tuple[str, int]]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        return tio.read_file(str(path)), label


def collate_bytes(batch):
    return [b[0] for b in batch], torch.tensor([b[1] for b in batch])


def decode_jpegs_on(device: str | torch.device, datas: list[torch.Tensor]) -> list[torch.Tensor]:
    """JPEG byte tensors -> uint8 ``(3, H, W)`` tensors on ``device`` (nvjpeg batch decode on CUDA)."""
    return tio.decode_jpeg(datas, mode=tio.ImageReadMode.RGB, device=torch.device(device))


class ResizedCache(Dataset):
    """``ds``'s images decoded and resized once to ``size`` x ``size`` uint8, kept in a memory-mapped file.

    ``ds`` is an ``ImageListDataset`` (``samples``, ``classes``); items are ``(transform(image), label)``
    with the cached uint8 ``(3, S, S)`` image, so ``transform`` should start with a resize to ``size``
    (the presets' first step; a resize to the size it already has is skipped). The file lives in
    ``cache_dir`` under a name hashed from the sample paths and the size, and is rebuilt when missing or
    incomplete. Disk cost: ``len(ds) * 3 * size * size`` bytes (``nbytes``).
    """

    def __init__(self, ds, size: int, cache_dir: str | os.PathLike, transform=None):
        self.samples, self.classes = ds.samples, list(ds.classes)
        self.size, self.transform = size, transform
        key = hashlib.sha1(json.dumps([size, [str(p) for p, _ in self.samples]]).encode()).hexdigest()[:16]
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = cache_dir / f"resized_{size}px_{len(self.samples)}_{key}.u8"
        done = self.path.with_suffix(".done")
        shape = (len(self.samples), 3, size, size)
        if not done.is_file():
            self._build(shape)
            done.touch()
        self.images = np.memmap(self.path, dtype=np.uint8, mode="r", shape=shape)

    @property
    def nbytes(self) -> int:
        return len(self.samples) * 3 * self.size * self.size

    def _build(self, shape) -> None:
        from torchvision.transforms.v2 import functional as TF

        out = np.memmap(self.path, dtype=np.uint8, mode="w+", shape=shape)
        for i, (path, _) in enumerate(self.samples):
            img = TF.resize(read_rgb(path), [self.size, self.size], antialias=True)  # (3, S, S) uint8
            out[i] = img.numpy()
        out.flush()
        del out

    @property
    def targets(self) -> list[int]:
        return [s[1] for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        x = torch.from_numpy(np.array(self.images[i]))  # (3, S, S) uint8, copied out of the map
        return (self.transform(x) if self.transform else x), self.samples[i][1]
