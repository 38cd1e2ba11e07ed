"""Large-margin Gaussian mixture loss, LGM (Wan et al., "Rethinking Feature Distribution for Loss
Functions in Image Classification", CVPR 2018), the "LGM Loss" of the ACANet paper's Table 2.

Embeddings are modelled as a mixture of K Gaussians N(mu_k, Lambda_k) with equal priors and diagonal
covariances. With d_k = 0.5 (x - mu_k)^T Lambda_k^{-1} (x - mu_k):
- classification: softmax cross-entropy of the logits -(1 + alpha [k = y]) d_k - 0.5 log|Lambda_k|
  (the margin alpha enlarges the target's distance during training);
- likelihood: d_y + 0.5 log|Lambda_y|, the negative log-likelihood of x under its class (constants
  dropped), batch-averaged;
- total = L_cls + lam * L_lkd, with alpha = 0.1, lam = 0.01 (LGM paper values).
Inference is without the margin: ``logits(out)`` = -d_k - 0.5 log|Lambda_k|.

Choices: ``learn_var=True`` learns the diagonal log-variances (the paper's formulation);
``learn_var=False`` fixes Lambda = I. Means start as N(0, 1/D) so that ||mu_k|| is about 1.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fgic.losses.base import FGICLoss
from fgic.losses.registry import register_loss
from fgic.models.base import ModelOutput


@register_loss("lgm", paper="000")
class LGMLoss(FGICLoss):
    """Large-margin Gaussian mixture loss (Wan et al. 2018): margin CE of class Gaussians + likelihood term."""

    needs = ("embedding",)
    param_weight_decay = 0.0  # means and log-variances are class statistics: no decay (the LGM paper names none)

    def __init__(
        self,
        num_classes: int,
        feat_dim: int | None = None,
        alpha: float = 0.1,
        lam: float = 0.01,
        learn_var: bool = True,
    ):
        super().__init__()
        if feat_dim is None:
            raise ValueError("LGMLoss needs feat_dim (the embedding size D)")
        self.alpha, self.lam = alpha, lam
        self.means = nn.Parameter(torch.randn(num_classes, feat_dim) / feat_dim**0.5)  # (K, D)
        self.log_var = nn.Parameter(torch.zeros(num_classes, feat_dim), requires_grad=learn_var)  # (K, D)

    def distances(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """d (B, K) = 0.5 Mahalanobis^2 to every mean, and log|Lambda_k| (K,)."""
        diff = emb[:, None, :] - self.means[None]  # (B, K, D)
        d = 0.5 * (diff.pow(2) * torch.exp(-self.log_var)[None]).sum(dim=-1)
        return d, self.log_var.sum(dim=-1)

    def forward(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        d, logdet = self.distances(out.embedding)
        onehot = F.one_hot(target, d.shape[1]).to(d.dtype)
        margin_logits = -(1.0 + self.alpha * onehot) * d - 0.5 * logdet  # (B, K)
        l_cls = F.cross_entropy(margin_logits, target)
        l_lkd = (d.gather(1, target[:, None]).squeeze(1) + 0.5 * logdet[target]).mean()
        return l_cls + self.lam * l_lkd

    def logits(self, out: ModelOutput) -> torch.Tensor:
        d, logdet = self.distances(out.embedding)
        return -d - 0.5 * logdet  # margin-free

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, lam={self.lam}, learn_var={self.log_var.requires_grad}"
