"""COCO loss, congenerous cosine (Liu, Li & Wang, "Rethinking Feature Discrimination and Polymerization
for Large-scale Recognition", NIPS workshop 2017), the "COCO Loss" of the ACANet paper's Table 2.

Features are L2-normalised and scaled by alpha, f^ = alpha f / ||f||; class centroids c_k are learnable
and L2-normalised, c^_k = c_k / ||c_k||; the loss is the softmax cross-entropy of the cosine scores
c^_k . f^ (alpha cos). The loss owns the centroids, which act as the classifier: ``logits(out)`` returns
alpha cos (COCO has no margin, so training and prediction use the same scores).

Choices: the batch sum of the paper is a batch mean here (a constant factor). The COCO paper ties alpha
to K and a target probability; the ACANet paper gives no value, so we default to alpha = 6.25, the value
of a widely used public PyTorch re-implementation of this family of losses; pass ``alpha=`` to change it.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fgic.losses.base import FGICLoss
from fgic.losses.registry import register_loss
from fgic.models.base import ModelOutput


@register_loss("coco", paper="000")
class COCOLoss(FGICLoss):
    """COCO, congenerous cosine (Liu et al. 2017): CE of scaled cosines to learnable normalised centroids."""

    needs = ("embedding",)
    param_weight_decay = 0.0  # centroids are normalised: decay only shrinks their norm (and so raises their step size)

    def __init__(self, num_classes: int, feat_dim: int | None = None, alpha: float = 6.25):
        super().__init__()
        if feat_dim is None:
            raise ValueError("COCOLoss needs feat_dim (the embedding size D)")
        self.alpha = alpha
        self.centroids = nn.Parameter(torch.randn(num_classes, feat_dim))  # (K, D)

    def logits(self, out: ModelOutput) -> torch.Tensor:
        f = self.alpha * F.normalize(out.embedding, dim=1)  # (B, D), alpha f / ||f||
        return F.linear(f, F.normalize(self.centroids, dim=1))  # (B, K)

    def forward(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(out), target)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"
