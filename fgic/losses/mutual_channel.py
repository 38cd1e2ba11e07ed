"""Mutual-Channel loss (Chang et al., "The Devil is in the Channels: Mutual-Channel Loss for Fine-Grained
Image Classification", IEEE TIP 2020), the "MC Loss" of the ACANet paper's Tables 2 and 4.

The last feature map F (B, K*xi, h, w) is split into K groups of xi channels, one group per class.
- Discriminality L_dis: channel-wise attention (CWA: in every group, floor(xi/2) channels picked at
  random are zeroed), cross-channel max pooling (CCMP: max over the xi channels of a group), global
  average pooling -> one score per class -> softmax cross-entropy.
- Diversity L_div: softmax over the h*w positions of every channel, CCMP, sum over positions, averaged
  over classes and images, divided by xi (so L_div is in [1/xi, 1]; 1 = the xi channels of a class peak
  at different places).
Total = CE(logits) + mu * L_dis + lam * (1 - L_div), i.e. CE + mu * L_dis - lam * L_div up to the constant
lam, which keeps the value non-negative without changing any gradient.

Choices:
- Weights: the MC-loss paper writes CE + mu * (L_dis - lambda * L_div); the ACANet paper gives none. We
  default to the authors' released training script, which uses 1.5 on L_dis and 20 on the normalised
  diversity term: ``mu=1.5, lam=20``, with xi = 3 channels per class.
- Channels: when the feature map does not have K*xi channels (ResNet-18's 512 vs 600 for CUB's 200
  classes), the loss owns a learnable 1x1 conv (no bias) from C to K*xi channels; it is a parameter of
  the loss, so the engine optimises it with the model, and MC-loss gradients reach the backbone through
  it. When C == K*xi the map is used as it is (the paper's setting). Pass ``in_channels`` when the
  model's ``feature_channels`` differs from ``feat_dim``.
- Masks are drawn independently per image (the released code shares one mask across the batch).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fgic.losses.base import FGICLoss
from fgic.losses.registry import register_loss
from fgic.models.base import ModelOutput


def channel_mask(batch: int, num_classes: int, xi: int, drop: int, device=None) -> torch.Tensor:
    """(B, K, xi) 0/1 mask with exactly ``drop`` zeros per class group, at random positions (CWA)."""
    ranks = torch.rand(batch, num_classes, xi, device=device).argsort(-1).argsort(-1)  # random permutation
    return (ranks >= drop).float()


def mc_terms(
    fmap: torch.Tensor, target: torch.Tensor, xi: int, mask: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """(L_dis, L_div) of a (B, K*xi, h, w) map with a (B, K, xi) channel mask."""
    B, C, h, w = fmap.shape
    f = fmap.reshape(B, C // xi, xi, h, w)  # (B, K, xi, h, w)
    scores = (f * mask[..., None, None]).amax(dim=2).mean(dim=(2, 3))  # CWA -> CCMP -> GAP, (B, K)
    l_dis = F.cross_entropy(scores, target)
    spatial = f.flatten(3).softmax(dim=-1)  # (B, K, xi, h*w), softmax over positions
    l_div = spatial.amax(dim=2).sum(dim=-1).mean() / xi  # CCMP, sum over positions, mean over K and B
    return l_dis, l_div


@register_loss("mc", paper="000")
class MutualChannelLoss(FGICLoss):
    """Mutual-Channel loss (Chang et al. 2020): CE + discriminality - diversity of per-class channel groups."""

    needs = ("logits", "feature_map")

    def __init__(
        self,
        num_classes: int,
        feat_dim: int | None = None,
        xi: int = 3,
        mu: float = 1.5,
        lam: float = 20.0,
        in_channels: int | None = None,
        drop: int | None = None,
    ):
        super().__init__()
        in_channels = in_channels or feat_dim
        if in_channels is None:
            raise ValueError("MutualChannelLoss needs in_channels (or feat_dim): the feature-map channels")
        self.num_classes, self.xi, self.mu, self.lam = num_classes, xi, mu, lam
        self.drop = xi // 2 if drop is None else drop
        self.in_channels = in_channels
        out = num_classes * xi
        self.proj = nn.Identity() if in_channels == out else nn.Conv2d(in_channels, out, 1, bias=False)

    def forward(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        if out.feature_map.shape[1] != self.in_channels:
            raise ValueError(
                f"feature map has {out.feature_map.shape[1]} channels, expected {self.in_channels}"
            )
        fmap = self.proj(out.feature_map)  # (B, K*xi, h, w)
        mask = channel_mask(fmap.shape[0], self.num_classes, self.xi, self.drop, fmap.device)
        l_dis, l_div = mc_terms(fmap, target, self.xi, mask)
        ce, dis, div = F.cross_entropy(out.logits, target), self.mu * l_dis, self.lam * (1.0 - l_div)
        self.last_losses = {"ce": ce.detach(), "dis": dis.detach(), "div": div.detach()}  # history: loss_<name>
        return ce + dis + div

    def extra_repr(self) -> str:
        return f"xi={self.xi}, mu={self.mu}, lam={self.lam}, drop={self.drop}"
