"""Data sets behind one call: ``build_dataset(name, root=None, split="train", transform=..., ...)``."""

from fgic.data.base import DatasetRootError, ImageListDataset, load_rgb, stratified_split
from fgic.data.registry import build_dataset, list_datasets, register_dataset

__all__ = [
    "DatasetRootError",
    "ImageListDataset",
    "build_dataset",
    "list_datasets",
    "load_rgb",
    "register_dataset",
    "stratified_split",
]
