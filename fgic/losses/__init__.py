"""Losses behind one interface: ``create_loss(name, num_classes, feat_dim, **kw)(out, target)``."""

from fgic.losses.base import FGICLoss
from fgic.losses.registry import create_loss, list_losses, register_loss

__all__ = ["FGICLoss", "create_loss", "list_losses", "register_loss"]
