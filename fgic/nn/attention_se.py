"""CA: squeeze-and-excitation channel attention, as used by both attention seeds.

Seed 002: "Mixed Attention Mechanism for Small-Sample Fine-grained Image Classification" (Li, Wu, Chang,
Huang, Ma, Cao), section II-A, eq. (1); seed 001: "Multi-Attention Mechanism Fusion for Fine-Grained
Image Classification" (Du, Ma), whose CA-ResNet50 puts this block in every bottleneck unit. Both cite
the SE block (Hu, Shen, Sun, CVPR 2018):

    s = sigmoid(W2 relu(W1 GAP(U)))           F_sq = GAP, F_ex = FC-ReLU-FC-sigmoid
    x~_c = s_c * u_c                           eq. (1) of the mixed-attention paper

Choices the seeds leave open:
- reduction ``r = 16`` (the SE paper's default; neither seed gives one), with at least ``min_hidden = 4``
  hidden units so that the narrow CPU trunks (64-channel stages) keep a usable bottleneck;
- the two FC layers are 1x1 convolutions on the pooled (B, C, 1, 1) tensor (identical maths, no reshape).

``SqueezeExcite`` computes the excitation weights with a chosen gate (sigmoid here, softmax for the
seed-002 spatial attention in ``fgic.nn.attention_spatial``). Every attention module in ``fgic.nn`` has
``attention_map(x)`` (the map that multiplies the input) and keeps the last one, detached, in
``last_map`` for heatmaps.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fgic.nn.registry import ATTENTIONS


def hidden_units(channels: int, reduction: int = 16, min_hidden: int = 4) -> int:
    """Width of the SE bottleneck: ``max(channels // reduction, min_hidden)``."""
    return max(channels // reduction, min_hidden)


class SqueezeExcite(nn.Module):
    """F_sq (global average pool) then F_ex (FC-ReLU-FC-gate): (B, C, H, W) -> channel weights (B, C, 1, 1).

    ``gate="sigmoid"`` gives SE's independent weights in (0, 1); ``gate="softmax"`` normalises over the
    channel axis so the C weights sum to one (the seed-002 spatial attention, section II-B).
    """

    def __init__(self, channels: int, reduction: int = 16, gate: str = "sigmoid", min_hidden: int = 4):
        super().__init__()
        if gate not in ("sigmoid", "softmax"):
            raise ValueError(f"gate must be 'sigmoid' or 'softmax', got {gate!r}")
        hidden = hidden_units(channels, reduction, min_hidden)
        self.gate = gate
        self.pool = nn.AdaptiveAvgPool2d(1)  # F_sq
        self.fc1 = nn.Conv2d(channels, hidden, 1)  # F_ex: first FC
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)  # F_ex: second FC

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc2(self.act(self.fc1(self.pool(x))))  # (B, C, 1, 1) logits
        if self.gate == "softmax":
            return torch.softmax(z, dim=1)  # (B, C, 1, 1), sums to one over C
        return torch.sigmoid(z)  # (B, C, 1, 1)


@ATTENTIONS.register("se", paper="001 / 002 (SE-Net)")
class SEChannelAttention(nn.Module):
    """CA: ``x * s`` with SE channel weights ``s`` (B, C, 1, 1); ``last_map`` is ``s``."""

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 4):
        super().__init__()
        self.channels = channels
        self.excite = SqueezeExcite(channels, reduction, "sigmoid", min_hidden)
        self.last_map: torch.Tensor | None = None

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.excite(x)  # (B, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.attention_map(x)  # (B, C, 1, 1)
        self.last_map = s.detach()
        return x * s  # eq. (1) of the mixed-attention paper: x~_c = u_c * s_c
