"""String registry of losses: ``create_loss("focal", num_classes=200, feat_dim=512, gamma=2.0)``."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from fgic.losses.base import FGICLoss
from fgic.registry import Registry


def _load_all() -> None:
    import fgic.losses as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name not in {"base", "registry"}:
            importlib.import_module(f"fgic.losses.{m.name}")


LOSSES = Registry("loss", loader=_load_all)


def register_loss(name: str, *, paper: str = "", aliases=(), deprecated=(), description: str | None = None) -> Callable:
    """Decorator on an ``FGICLoss`` class (or factory) taking ``num_classes``, ``feat_dim`` and its own options;
    ``description`` defaults to the first line of its docstring (``fgic.registry.Registry``)."""
    return LOSSES.register(name, paper=paper, aliases=aliases, deprecated=deprecated, description=description)


def list_losses(pattern: str = "") -> list[str]:
    """Registered loss names (no aliases) containing ``pattern``, sorted."""
    return LOSSES.list(pattern)


def create_loss(name: str, num_classes: int, feat_dim: int | None = None, **kw) -> FGICLoss:
    """Build a registered loss. Every constructor takes ``num_classes`` and ``feat_dim`` (may ignore them)."""
    return LOSSES[name](num_classes=num_classes, feat_dim=feat_dim, **kw)
