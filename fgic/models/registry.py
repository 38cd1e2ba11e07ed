"""String registry of models, so a notebook parameter can stay a plain string.

Every registered model is an ``nn.Module`` that follows one protocol (see ``fgic.models.base``):

- ``forward_features(x)`` -> feature map ``(B, C, h, w)`` (what CAM / Grad-CAM / MC-loss read);
- ``forward_head(fmap, pre_logits=False)`` -> embedding ``(B, D)`` or logits ``(B, K)``;
- ``forward(x) == forward_head(forward_features(x))``;
- attributes ``num_classes``, ``num_features`` (= D) and ``feature_channels`` (= C).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch.nn as nn

from fgic.registry import Registry

# Importing the model modules registers them (fgic.models.zoo); done lazily so `import fgic` stays cheap.
MODELS = Registry("model", loader=lambda: importlib.import_module("fgic.models.zoo"))


def register_model(
    name: str, paper: str = "", *, aliases=(), deprecated=(), description: str | None = None
) -> Callable:
    """Decorator: ``@register_model("acanet18", paper="000")`` on a factory ``fn(num_classes, pretrained, **kw)``.

    ``aliases`` resolve silently, ``deprecated`` ones with a ``DeprecationWarning`` naming ``name``;
    ``description`` defaults to the first line of the factory's docstring (``fgic.registry.Registry``).
    """
    return MODELS.register(name, paper=paper, aliases=aliases, deprecated=deprecated, description=description)


def list_models(pattern: str = "") -> list[str]:
    """Registered model names (no aliases) containing ``pattern`` (or matching it as a glob), sorted."""
    return MODELS.list(pattern)


def create_model(name: str, num_classes: int, pretrained: bool | str = False, **kw) -> nn.Module:
    """Build a registered model.

    ``pretrained``: False (random init), True (the library's ImageNet weights from the local cache,
    downloading them when online), or a path to a weights file. Missing weights raise; they never fall
    back silently to random init. An unknown name raises ``KeyError`` with the closest names; a deprecated
    one builds its new name's model with a ``DeprecationWarning``.
    ``output_stride`` (any model): the last downsampling steps at stride 1, so ``forward_features`` ends at
    that stride (8: 8x8 maps at 64 px instead of 2x2; ``fgic.nn.stride``); None keeps the model's own.
    """
    factory = MODELS[name]
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    stride = kw.pop("output_stride", None)
    model = factory(num_classes=num_classes, pretrained=pretrained, **kw)
    if stride is not None:
        from fgic.nn.stride import set_output_stride

        set_output_stride(model, int(stride))
    return model
