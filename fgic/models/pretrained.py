"""Pretrained weights from torchvision or timm: the local cache, a download when online, or a file.

Asked-for weights that cannot be had raise ``PretrainedWeightsError``; nothing falls back silently to a
random initialisation.

Offline: with ``FGIC_ALLOW_DOWNLOAD=0`` no weight source (torchvision, timm / Hugging Face) touches the network;
missing weights raise at once, naming the repository, tag and file and the exact local path to put it at.
Weights downloaded elsewhere go into ``weights_dir()`` (``$FGIC_WEIGHTS``, default ``~/.cache/fgic/weights``):
torchvision's file under its own name (``resnet50-11ad3fa6.pth``), timm's as ``<arch>.<tag>.safetensors``.

``probe_weights()``: a context in which every lookup stops with ``WeightsAvailable`` instead of loading a found
file (``fgic.plan`` checks a whole grid's weights this way, on the meta device, in a fraction of a second).
"""

from __future__ import annotations

import contextvars
import os
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn as nn


class PretrainedWeightsError(RuntimeError):
    pass


class WeightsAvailable(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside ``probe_weights()`` where weights would be loaded (``where``: the file or the download)."""

    def __init__(self, where: str):
        super().__init__(where)
        self.where = where


_PROBE = contextvars.ContextVar("fgic_weights_probe", default=False)


@contextmanager
def probe_weights():
    """Within this context, a found weights file (or an allowed download) raises ``WeightsAvailable``."""
    token = _PROBE.set(True)
    try:
        yield
    finally:
        _PROBE.reset(token)


def _found(where) -> None:
    if _PROBE.get():
        raise WeightsAvailable(str(where))


def downloads_allowed() -> bool:
    """Whether weights may be downloaded: ``$FGIC_ALLOW_DOWNLOAD`` is not "0" (and Hugging Face is not offline)."""
    return os.environ.get("FGIC_ALLOW_DOWNLOAD", "1") != "0" and os.environ.get("HF_HUB_OFFLINE", "0") in ("", "0")


def weights_dir() -> Path:
    """``$FGIC_WEIGHTS`` or ``~/.cache/fgic/weights``: where to put weights downloaded on another machine."""
    return Path(os.environ.get("FGIC_WEIGHTS") or Path.home() / ".cache" / "fgic" / "weights").expanduser()


def load_state_dict_file(path: str | os.PathLike) -> dict:
    """Load a state dict from ``path`` (``weights_only=True``); unwraps ``{"state_dict"|"model": ...}``."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"pretrained weights file not found: {path}")
    _found(path)
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
    name = url.rsplit("/", 1)[-1]
    cache = Path(torch.hub.get_dir()) / "checkpoints" / name
    for path in (weights_dir() / name, cache):
        if path.is_file():
            _found(path)
            return torch.load(path, map_location="cpu", weights_only=True)
    if allow_download is None:
        allow_download = downloads_allowed()
    if not allow_download:
        raise PretrainedWeightsError(
            f"pretrained weights {weights_enum} (file {name}) are not in the local cache (neither {weights_dir()} "
            f"nor the torch hub cache {cache.parent}) and downloads are disabled (FGIC_ALLOW_DOWNLOAD=0). "
            f"Download {url} on a machine with internet access and put it at {weights_dir() / name}, "
            "or pass pretrained='path/to/file.pth'."
        )
    _found(f"download {url}")
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
