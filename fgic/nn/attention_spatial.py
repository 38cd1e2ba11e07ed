"""Spatial attention: seed 002's SA-Ours (an SE block turned spatial) and seed 001's SA (CBAM-style).

``SESpatialAttention`` -- "Mixed Attention Mechanism for Small-Sample Fine-grained Image Classification"
(Li et al.), section II-B, eqs. (2)-(3). The SE excitation keeps its squeeze and FC layers but its last
sigmoid becomes a softmax over channels, so the channel weights ``s`` sum to one:

    x~_t = s_c * u_c                                   eq. (2)
    V    = F_flat(X~_t) = sum_c s_c u_c                (B, 1, H, W), "flattened along channel direction"
    x~_s = F_mul(u_{s,c}, v_s) = u_{s,c} * v_s         eq. (3)

``V`` is a convex combination of the input channels (not squashed to (0, 1)), so its scale is the
feature scale; we keep that, as the paper does not add a normalisation. Reduction ``r = 16`` as for CA.
The paper's symbols are inconsistent (F_ec / F_et / F_ex name the same excitation; eq. (2) writes x~_t
for the per-channel product): we read them as above.

``CBAMSpatialAttention`` -- the SA of "Multi-Attention Mechanism Fusion for Fine-Grained Image
Classification" (Du, Ma). The paper names the module but never defines it. We take the best-known
spatial attention, CBAM's (Woo et al., ECCV 2018): average- and max-pool over channels, a 7x7
convolution on the two maps, a sigmoid, and multiply: ``x * sigmoid(conv7x7([mean_c x; max_c x]))``.
Why: it is the standard "SA" companion of SE-style "CA" in ResNet attention studies, it costs only
2 * 49 + 1 weights per block (so SA-ResNet50 stays a ResNet50), and its map is a heatmap in (0, 1).
CBAM's reference code follows the conv with BatchNorm; the CBAM paper does not, and neither do we.

Both modules expose ``attention_map(x)`` -> (B, 1, H, W) and keep the last one, detached, in ``last_map``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fgic.nn.attention_se import SqueezeExcite
from fgic.nn.registry import ATTENTIONS


@ATTENTIONS.register("softmax_sa", paper="002")
class SESpatialAttention(nn.Module):
    """SA-Ours of seed 002: a spatial map from softmax-normalised SE channel weights; ``x * V``."""

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 4):
        super().__init__()
        self.channels = channels
        self.excite = SqueezeExcite(channels, reduction, "softmax", min_hidden)  # F_sq + F_ex (softmax)
        self.last_map: torch.Tensor | None = None
        self.last_channel_weights: torch.Tensor | None = None

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        s = self.excite(x)  # (B, C, 1, 1), sums to one over C
        self.last_channel_weights = s.detach()
        x_t = x * s  # eq. (2) of the mixed-attention paper: x~_t = u_c * s_c
        return x_t.sum(dim=1, keepdim=True)  # F_flat: V, (B, 1, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.attention_map(x)  # (B, 1, H, W)
        self.last_map = v.detach()
        return x * v  # eq. (3) of the mixed-attention paper: x~_s = u_{s,c} * v_s


@ATTENTIONS.register("cbam_sa", paper="001 (CBAM)")
class CBAMSpatialAttention(nn.Module):
    """SA of seed 001 (CBAM's spatial attention): ``x * sigmoid(conv([mean_c x; max_c x]))``.

    ``channels`` is not used (the map pools over channels); it is there so that every registered attention
    is built as ``factory(channels, **kw)``. Pass ``kernel_size`` by keyword.
    """

    def __init__(self, channels: int | None = None, kernel_size: int = 7):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)
        self.last_map: torch.Tensor | None = None

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return torch.sigmoid(self.conv(pooled))  # (B, 1, H, W) in (0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.attention_map(x)  # (B, 1, H, W)
        self.last_map = m.detach()
        return x * m  # (B, C, H, W)
