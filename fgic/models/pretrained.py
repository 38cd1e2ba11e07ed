"""Pretrained weights from torchvision or timm: the local cache, a download when online, or a file.

Asked-for weights that cannot be had raise ``PretrainedWeightsError``; nothing falls back silently to a
random initialisation.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn


class PretrainedWeightsError(RuntimeError):
    pass


def load_state_dict_file(path: str | os.PathLike) -> dict:
    """Load a state dict from ``path`` (``weights_only=True``); unwraps ``{"state_dict"|"model": ...}``."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"pretrained weights file not found: {path}")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    return sd


def torchvision_state_dict(weights_enum, allow_download: bool | None = None) -> dict:
    """State dict for a torchvision ``Weights`` enum member, from the torch hub cache.

    Downloads only when ``allow_download`` (default: env ``FGIC_ALLOW_DOWNLOAD`` != "0"); any failure
    raises ``PretrainedWeightsError`` naming the file to place in the cache.
    """
    url = weights_enum.url
    cache = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if cache.is_file():
        return torch.load(cache, map_location="cpu", weights_only=True)
    if allow_download is None:
        allow_download = os.environ.get("FGIC_ALLOW_DOWNLOAD", "1") != "0"
    if not allow_download:
        raise PretrainedWeightsError(
            f"pretrained weights {weights_enum} are not in the local cache ({cache}) and downloads are "
            "disabled (FGIC_ALLOW_DOWNLOAD=0). Download them on a machine with internet access and copy "
            f"the file to {cache}, or pass pretrained='path/to/file.pth'."
        )
    try:
        return weights_enum.get_state_dict(progress=False)
    except Exception as e:  # network errors come in many types
        raise PretrainedWeightsError(
            f"could not download pretrained weights {weights_enum} from {url} ({type(e).__name__}: {e}). "
            f"Place the file at {cache} or pass pretrained='path/to/file.pth'; "
            "fgic never falls back to random weights when pretrained ones were asked for."
        ) from e


def load_into(module: nn.Module, state_dict: dict, skip_prefixes: tuple[str, ...] = ()) -> list[str]:
    """Copy matching tensors into ``module``; return the names that were missing from ``state_dict``.

    Keys starting with any of ``skip_prefixes`` (a classifier for another class count) are ignored.
    Raises when nothing matched, which means the file is for another architecture.
    """
    sd = {k: v for k, v in state_dict.items() if not k.startswith(skip_prefixes)}
    result = module.load_state_dict(sd, strict=False)
    own = set(module.state_dict())
    if not own & set(sd):
        raise PretrainedWeightsError("no parameter name in the weights file matches this model")
    return list(result.missing_keys)
