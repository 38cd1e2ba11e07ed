"""Large margin cosine loss, LMCL / CosFace (Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face
Recognition", CVPR 2018), the "LMCL Loss" of the ACANet paper's Table 2 (registered as ``cosface`` and
``lmcl``).

The loss owns the classifier: weights W (K, D) and features are L2-normalised, the target cosine loses a
margin m and all cosines are scaled by s: CE(s (cos theta_j - m [j = y])). s = 64, m = 0.35 as in the
CosFace paper (the ACANet paper gives none). ``logits(out)`` is the margin-free s cos theta.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fgic.losses.base import FGICLoss
from fgic.losses.registry import register_loss
from fgic.models.base import ModelOutput


@register_loss("cosface", paper="000", aliases=("lmcl",))
class CosFaceLoss(FGICLoss):
    """Large margin cosine loss, LMCL / CosFace (Wang et al. 2018): CE of s (cos - m at the target)."""

    param_weight_decay = None  # the model's decay: CosFace trains its classifier weights with the net's 5e-4
    needs = ("embedding",)

    def __init__(self, num_classes: int, feat_dim: int | None = None, s: float = 64.0, m: float = 0.35):
        super().__init__()
        if feat_dim is None:
            raise ValueError("CosFaceLoss needs feat_dim (the embedding size D)")
        self.s, self.m = s, m
        self.weight = nn.Parameter(torch.empty(num_classes, feat_dim))  # (K, D)
        nn.init.xavier_uniform_(self.weight)

    def cos_theta(self, emb: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(emb, dim=1), F.normalize(self.weight, dim=1))  # (B, K)

    def forward(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        cos = self.cos_theta(out.embedding)
        margin = F.one_hot(target, cos.shape[1]).to(cos.dtype) * self.m
        return F.cross_entropy(self.s * (cos - margin), target)

    def logits(self, out: ModelOutput) -> torch.Tensor:
        return self.s * self.cos_theta(out.embedding)

    def extra_repr(self) -> str:
        return f"s={self.s}, m={self.m}"
