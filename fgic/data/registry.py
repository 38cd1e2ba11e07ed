"""``build_dataset(name, root=None, split="train", ...)``: every data set behind one string registry."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable

from torch.utils.data import Dataset

_DATASETS: dict[str, Callable[..., Dataset]] = {}


def register_dataset(name: str) -> Callable:
    def deco(fn):
        if name in _DATASETS:
            raise ValueError(f"data set {name!r} is already registered")
        _DATASETS[name] = fn
        return fn

    return deco


def _ensure_loaded() -> None:
    import fgic.data as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name not in {"base", "registry", "transforms"}:
            importlib.import_module(f"fgic.data.{m.name}")


def list_datasets() -> list[str]:
    _ensure_loaded()
    return sorted(_DATASETS)


def build_dataset(
    name: str,
    root=None,
    split: str = "train",
    transform: Callable | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    **kw,
) -> Dataset:
    """Build a registered data set.

    ``split``: "train" | "val" | "trainval" | "test" (see ``fgic.data.base``). ``root`` defaults to
    ``$FGIC_DATA``; the synthetic benchmark needs none. ``seed`` fixes the validation split (and, for
    the synthetic benchmark, the generated images).
    """
    _ensure_loaded()
    if name not in _DATASETS:
        close = difflib.get_close_matches(str(name), list(_DATASETS), n=3, cutoff=0.5)
        hint = f"did you mean {close}? " if close else ""
        raise KeyError(f"unknown data set {name!r}; {hint}available: {sorted(_DATASETS)}")
    return _DATASETS[name](root=root, split=split, transform=transform, val_fraction=val_fraction, seed=seed, **kw)
