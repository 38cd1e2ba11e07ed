"""Softmax cross-entropy, the reference loss every other loss is compared with."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fgic.losses.base import FGICLoss
from fgic.losses.registry import register_loss
from fgic.models.base import ModelOutput


@register_loss("ce", paper="baseline")
class CrossEntropy(FGICLoss):
    """Softmax cross-entropy on the logits (optional label smoothing): the reference loss."""

    def __init__(self, num_classes: int, feat_dim: int | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.logits, target, label_smoothing=self.label_smoothing)
