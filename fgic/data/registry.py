"""``build_dataset(name, root=None, split="train", ...)``: every data set behind one string registry."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from torch.utils.data import Dataset

from fgic.registry import Registry


def _load_all() -> None:
    import fgic.data as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name not in {"base", "registry", "transforms"}:
            importlib.import_module(f"fgic.data.{m.name}")


DATASETS = Registry("data set", loader=_load_all)


def register_dataset(
    name: str, *, paper: str = "", aliases=(), deprecated=(), description: str | None = None
) -> Callable:
    """Decorator on a factory ``fn(root, split, transform, val_fraction, seed, **kw) -> Dataset``;
    ``description`` defaults to the first line of its docstring (``fgic.registry.Registry``)."""
    return DATASETS.register(name, paper=paper, aliases=aliases, deprecated=deprecated, description=description)


def list_datasets(pattern: str = "") -> list[str]:
    """Registered data set names (no aliases) containing ``pattern``, sorted."""
    return DATASETS.list(pattern)


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
    return DATASETS[name](root=root, split=split, transform=transform, val_fraction=val_fraction, seed=seed, **kw)
