"""MA-Ours: mixed channel + spatial attention, concatenated and merged back to C channels.

"Mixed Attention Mechanism for Small-Sample Fine-grained Image Classification" (Li et al.), section
II-C, eq. (4) and Fig. 1. The input U goes through two parallel branches, the SE channel attention (CA,
eq. (1)) and the proposed spatial attention (SA-Ours, eqs. (2)-(3)); their outputs are concatenated
(2C channels) and a convolution F_merge maps them back to an H x W x C feature map:

    X~_cs = F_cat(X~_c, X~_s)          eq. (4), (B, 2C, H, W)
    X~    = F_merge(X~_cs)             (B, C, H, W)

Choices the paper leaves open, and why:
- F_merge is a 1x1 convolution with bias (2C -> C), no BatchNorm or activation. The paper only says "a
  convolution"; a 1x1 kernel mixes the two branches per position without blurring the spatial map the
  SA branch computed, and keeps the cost at 2C^2 weights (a 3x3 kernel would add 75 M weights on
  ResNet-50's 2048 channels).
- Its initialisation: ``merge_init="mean"`` (default) sets the weights to [I/2, I/2] and the bias to 0, so
  at the start MA outputs the average of the two branches and a pretrained backbone's features keep
  their scale; ``merge_init="random"`` keeps PyTorch's default convolution init. The paper says nothing
  about this initialisation.
- The two branches do not share weights (Fig. 1 draws two separate excitation paths); both use r = 16.

``last_map`` is the SA branch's spatial map V (B, 1, H, W); the CA weights are in ``ca.last_map``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fgic.nn.attention_se import SEChannelAttention
from fgic.nn.attention_spatial import SESpatialAttention
from fgic.nn.registry import ATTENTIONS


@ATTENTIONS.register("ma", paper="002")
class MixedAttention(nn.Module):
    """MA-Ours: ``merge(cat(CA(x), SA(x)))`` with a 1x1 merge convolution (2C -> C)."""

    def __init__(self, channels: int, reduction: int = 16, merge_init: str = "mean", min_hidden: int = 4):
        super().__init__()
        if merge_init not in ("mean", "random"):
            raise ValueError(f"merge_init must be 'mean' or 'random', got {merge_init!r}")
        self.channels = channels
        self.ca = SEChannelAttention(channels, reduction, min_hidden)
        self.sa = SESpatialAttention(channels, reduction, min_hidden)
        self.merge = nn.Conv2d(2 * channels, channels, kernel_size=1)  # F_merge
        if merge_init == "mean":
            self.reset_merge_to_mean()
        self.last_map: torch.Tensor | None = None

    @torch.no_grad()
    def reset_merge_to_mean(self) -> None:
        """Set F_merge to the branch average: weights [I/2, I/2], bias 0."""
        eye = torch.eye(self.channels).mul_(0.5)  # (C, C)
        self.merge.weight.copy_(torch.cat([eye, eye], dim=1)[:, :, None, None])  # (C, 2C, 1, 1)
        self.merge.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_c = self.ca(x)  # (B, C, H, W), eq. (1)
        x_s = self.sa(x)  # (B, C, H, W), eqs. (2)-(3)
        self.last_map = self.sa.last_map
        x_cs = torch.cat([x_c, x_s], dim=1)  # eq. (4) of the mixed-attention paper: F_cat, (B, 2C, H, W)
        return self.merge(x_cs)  # F_merge, (B, C, H, W)
