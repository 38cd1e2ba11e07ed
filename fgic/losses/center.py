"""Center loss (Wen et al., "A Discriminative Feature Learning Approach for Deep Face Recognition", ECCV
2016), the "Center Loss" of the ACANet paper's Table 2.

Total = CE(logits) + lam * 0.5 * mean_i ||f_i - c_{y_i}||^2 with one learnable centre per class in the
embedding space (``out.embedding``). The centres are parameters of the loss, optimised with the model.

Choices: ``lam = 0.003`` (Wen et al.'s face-recognition setting; the ACANet paper gives none); the
squared distance is averaged over the batch. Wen et al. move the centres with their own rate alpha,
independent of lam; to get that behaviour from a shared optimiser the centres' gradient is multiplied by
``center_grad_scale`` (default 1/lam, so a centre moves like (c - f) / B whatever lam is). The loss value
is unchanged by it. Centres start at zero.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fgic.losses.base import FGICLoss
from fgic.losses.registry import register_loss
from fgic.models.base import ModelOutput


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Same value as ``x``; the gradient flowing into ``x`` is multiplied by ``scale``."""
    return x.detach() + (x - x.detach()) * scale


@register_loss("center", paper="000")
class CenterLoss(FGICLoss):
    """Center loss (Wen et al. 2016): CE + lam/2 x squared distance of the embedding to its class centre."""

    needs = ("logits", "embedding")
    param_weight_decay = 0.0  # Wen et al. move the centres by their own rule, without decay (it would pull them to 0)

    def __init__(
        self,
        num_classes: int,
        feat_dim: int | None = None,
        lam: float = 0.003,
        center_grad_scale: float | None = None,
    ):
        super().__init__()
        if feat_dim is None:
            raise ValueError("CenterLoss needs feat_dim (the embedding size D)")
        self.lam = lam
        self.center_grad_scale = 1.0 / lam if center_grad_scale is None else center_grad_scale
        self.centers = nn.Parameter(torch.zeros(num_classes, feat_dim))  # (K, D)

    def center_term(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        c = scale_grad(self.centers, self.center_grad_scale)[target]  # (B, D)
        return 0.5 * (emb - c).pow(2).sum(dim=1).mean()

    def forward(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        ce, center = F.cross_entropy(out.logits, target), self.lam * self.center_term(out.embedding, target)
        self.last_losses = {"ce": ce.detach(), "center": center.detach()}  # history: loss_ce, loss_center
        return ce + center

    def extra_repr(self) -> str:
        return f"lam={self.lam}, center_grad_scale={self.center_grad_scale:g}"
