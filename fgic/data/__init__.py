"""Data sets behind one call: ``build_dataset(name, root=None, split="train", transform=..., ...)``."""

from fgic.data.base import DatasetRootError, ImageListDataset, load_rgb, stratified_split
from fgic.data.registry import build_dataset, list_datasets, register_dataset
from fgic.data.subsets import FULL_TRAIN, balanced_indices, balanced_sample, protocol

__all__ = [
    "FULL_TRAIN",
    "DatasetRootError",
    "ImageListDataset",
    "balanced_indices",
    "balanced_sample",
    "build_dataset",
    "list_datasets",
    "load_rgb",
    "protocol",
    "register_dataset",
    "stratified_split",
]
