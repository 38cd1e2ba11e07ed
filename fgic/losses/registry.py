"""String registry of losses: ``create_loss("focal", num_classes=200, feat_dim=512, gamma=2.0)``."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable

from fgic.losses.base import FGICLoss

_LOSSES: dict[str, Callable[..., FGICLoss]] = {}


def register_loss(name: str) -> Callable:
    def deco(cls):
        if name in _LOSSES:
            raise ValueError(f"loss {name!r} is already registered")
        _LOSSES[name] = cls
        return cls

    return deco


def _ensure_loaded() -> None:
    import fgic.losses as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name not in {"base", "registry"}:
            importlib.import_module(f"fgic.losses.{m.name}")


def list_losses() -> list[str]:
    _ensure_loaded()
    return sorted(_LOSSES)


def create_loss(name: str, num_classes: int, feat_dim: int | None = None, **kw) -> FGICLoss:
    """Build a registered loss. Every constructor takes ``num_classes`` and ``feat_dim`` (may ignore them)."""
    _ensure_loaded()
    if name not in _LOSSES:
        close = difflib.get_close_matches(str(name), list(_LOSSES), n=3, cutoff=0.5)
        hint = f"did you mean {close}? " if close else ""
        raise KeyError(f"unknown loss {name!r}; {hint}available: {sorted(_LOSSES)}")
    return _LOSSES[name](num_classes=num_classes, feat_dim=feat_dim, **kw)
