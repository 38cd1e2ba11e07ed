"""CSCA: channel-spatial "confusion" attention of seed 001 (channel attention, then spatial attention).

"Multi-Attention Mechanism Fusion for Fine-Grained Image Classification" (Du, Ma). The paper names a
"channel spatial confusion attention" (CSCA) and reports it as its best network (CSCA-ResNet50, Table 1)
but gives no definition, equation or figure. "Confusion" reads as a translation of "fusion / mixing".

Our choice: the sequential channel-then-spatial arrangement of CBAM (Woo et al., ECCV 2018),

    x' = x  * M_c(x)          M_c: the seed's CA (SE, fgic.nn.attention_se), (B, C, 1, 1)
    y  = x' * M_s(x')         M_s: the seed's SA (CBAM spatial, fgic.nn.attention_spatial), (B, 1, H, W)

Why: CBAM is the best-known block that applies both attentions, and building CSCA from exactly the CA
and SA modules of the two sibling networks makes the four networks of Table 1 an ablation ladder
(CA alone, SA alone, both). Where we depart from CBAM: CBAM's channel branch pools with both average and
max into a shared MLP; we keep the SE channel branch (average pool only) so that CSCA differs from
CA-ResNet50 and SA-ResNet50 only in combining them. Reduction r = 16 and a 7x7 spatial kernel, as in CBAM.

``last_map`` is the spatial map (B, 1, H, W); ``last_channel_map`` the channel weights (B, C, 1, 1).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fgic.nn.attention_se import SEChannelAttention
from fgic.nn.attention_spatial import CBAMSpatialAttention
from fgic.nn.registry import ATTENTIONS


@ATTENTIONS.register("csca", paper="001")
class ChannelSpatialAttention(nn.Module):
    """CSCA: ``SA(CA(x))``, CBAM order (channel first, then spatial)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, min_hidden: int = 4):
        super().__init__()
        self.channels = channels
        self.channel = SEChannelAttention(channels, reduction, min_hidden)
        self.spatial = CBAMSpatialAttention(kernel_size=kernel_size)
        self.last_map: torch.Tensor | None = None
        self.last_channel_map: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.spatial(self.channel(x))  # (B, C, H, W): channel weights, then the spatial map
        self.last_channel_map = self.channel.last_map  # (B, C, 1, 1)
        self.last_map = self.spatial.last_map  # (B, 1, H, W)
        return y
