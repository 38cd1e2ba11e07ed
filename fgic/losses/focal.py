"""Softmax focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

FL = -(1 - p_y)^gamma * log p_y, averaged over the batch; gamma = 0 is cross-entropy. The ACANet paper
(Table 2, "Focal Loss") gives no gamma; we use the focal-loss paper's gamma = 2 and no alpha weighting
(the classes of the FGIC sets are roughly balanced).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fgic.losses.base import FGICLoss
from fgic.losses.registry import register_loss
from fgic.models.base import ModelOutput


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """(B, K) logits, (B,) targets -> scalar mean focal loss."""
    logp = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)  # log p_y, (B,)
    return (-((1.0 - logp.exp()) ** gamma) * logp).mean()


@register_loss("focal", paper="000")
class FocalLoss(FGICLoss):
    """Softmax focal loss (Lin et al. 2017): -(1 - p_y)^gamma log p_y, gamma 2 (0 = cross-entropy)."""

    def __init__(self, num_classes: int, feat_dim: int | None = None, gamma: float = 2.0):
        super().__init__()
        self.gamma = gamma

    def forward(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(out.logits, target, self.gamma)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"
