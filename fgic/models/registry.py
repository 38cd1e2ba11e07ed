"""String registry of models, so a notebook parameter can stay a plain string.

Every registered model is an ``nn.Module`` that follows one protocol (see ``fgic.models.base``):

- ``forward_features(x)`` -> feature map ``(B, C, h, w)`` (what CAM / Grad-CAM / MC-loss read);
- ``forward_head(fmap, pre_logits=False)`` -> embedding ``(B, D)`` or logits ``(B, K)``;
- ``forward(x) == forward_head(forward_features(x))``;
- attributes ``num_classes``, ``num_features`` (= D) and ``feature_channels`` (= C).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_PAPERS: dict[str, str] = {}


def register_model(name: str, paper: str = "") -> Callable:
    """Decorator: ``@register_model("acanet18", paper="000")`` on a factory ``fn(num_classes, pretrained, **kw)``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        _PAPERS[name] = paper
        return fn

    return deco


def _ensure_loaded() -> None:
    # Importing the model modules registers them; done lazily so `import fgic` stays cheap.
    from fgic.models import zoo  # noqa: F401


def list_models(pattern: str = "") -> list[str]:
    """Registered model names containing ``pattern``, sorted."""
    _ensure_loaded()
    return sorted(n for n in _MODELS if pattern in n)


def create_model(name: str, num_classes: int, pretrained: bool | str = False, **kw) -> nn.Module:
    """Build a registered model.

    ``pretrained``: False (random init), True (the library's ImageNet weights from the local cache,
    downloading them when online), or a path to a weights file. Missing weights raise; they never fall
    back silently to random init.
    """
    _ensure_loaded()
    if name not in _MODELS:
        close = difflib.get_close_matches(str(name), list(_MODELS), n=5, cutoff=0.5)
        hint = f"did you mean {close}? " if close else ""
        raise KeyError(f"unknown model {name!r}; {hint}list_models() gives all {len(_MODELS)} names")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return _MODELS[name](num_classes=num_classes, pretrained=pretrained, **kw)
