"""Selective Channel Recalibration Attention (SCRA).

Paper: Thushara, Ismithdeen, Abi, "Fine-Grained Image Classification with ConvNeXt and SCR-Attention"
(MBZUAI), section 3.1.3 and Figure 1. The block takes a feature map, runs a 1x1 convolution over it
(spatial size kept, channels mixed), applies a sigmoid to get an attention map in (0, 1), and multiplies
that map element-wise with the input:

    A = sigmoid(conv1x1(X)),    Y = A * X        # section 3.1.3 (the paper numbers no equation)

The paper places one SCRA between stage 1 and stage 2 of ConvNeXt-V2 Large (see
``fgic.models.convnextv2_scra``).

Choices for what the paper leaves open (and why):

- Channel count of the attention map: C (one gate per channel and position). The paper speaks of a
  "per-channel weighting", "channel interaction" and an output "of the same size". The work it cites as
  its inspiration (Bonettini et al., 2020) uses a single-channel spatial map instead; we follow the
  text of this paper and do not offer that variant.
- Bias: yes (the ``nn.Conv2d`` default; the paper does not say). With C = 192 (Large, stage 1) the block
  has 192 * 192 + 192 = 37,056 parameters and costs 2 * 192^2 * 56^2 = 0.231 GFLOPs at 224 px. The
  paper's Table 1 reports +0.221 M parameters and +0.08 GFLOPs, which no single 1x1 conv after stage 1
  gives; its 196.881 M equals timm's plain Large with a 300-class head, so we read the delta as a
  measurement artefact rather than a hint at a bigger block.
- Initialisation: zero weight and zero bias by default (``zero_init=True``), so the gate starts at
  exactly 0.5 everywhere. A constant gate only rescales each position, and ConvNeXt's stage-2
  downsampling starts with a channel LayerNorm, so the pretrained network's function is preserved at
  the start of fine-tuning (up to LayerNorm's eps); the gradient w.r.t. the weight is not zero, so
  the gate still learns. ``zero_init=False`` uses timm's ConvNeXt init (truncated normal, std 0.02).

``last_map`` keeps the latest attention map, detached, (B, C, H, W), for heatmaps; set ``keep_map = False``
to drop it (it holds one stage-1-sized tensor between steps: ~0.3 GB for Large at batch 128, 224 px).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class SCRA(nn.Module):
    """Gate a (B, C, H, W) feature map with sigmoid(1x1 conv of itself); output has the same shape."""

    def __init__(self, channels: int, bias: bool = True, zero_init: bool = True):
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels, kernel_size=1, bias=bias)
        self.keep_map = True
        self.last_map: torch.Tensor | None = None  # (B, C, H, W), detached, set by forward
        self.reset_parameters(zero_init)

    def reset_parameters(self, zero_init: bool = True) -> None:
        if zero_init:
            nn.init.zeros_(self.conv.weight)
        else:
            nn.init.trunc_normal_(self.conv.weight, std=0.02)
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention map A = sigmoid(conv1x1(x)) in (0, 1), (B, C, H, W)."""
        return torch.sigmoid(self.conv(x))  # section 3.1.3: 1x1 conv, then sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention(x)  # (B, C, H, W)
        self.last_map = a.detach() if self.keep_map else None
        return a * x  # (B, C, H, W), element-wise gating (section 3.1.3)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
