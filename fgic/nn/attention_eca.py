"""ECA: efficient channel attention, a 1D convolution across channels instead of SE's two FC layers.

Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020, eq. (12) and the adaptive kernel size of section 3.3 (eq. 14):

    w = sigmoid(conv1d_k(GAP(X)))             eq. (12): local cross-channel interaction, no reduction
    k = | log2(C) / gamma + b / gamma |_odd   eq. (14), gamma = 2, b = 1

It is not one of the five papers' modules: it is here to show that a new attention module is one file
(this one) plus its registry line, and to give the cross-paper study a channel attention without a
bottleneck. Choices: the kernel is never below 3.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from fgic.nn.registry import ATTENTIONS


def eca_kernel_size(channels: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """Eq. (14): the nearest odd number to ``log2(C) / gamma + b / gamma``, at least 3."""
    t = int(abs(math.log2(channels) / gamma + b / gamma))
    return max(3, t if t % 2 else t + 1)


@ATTENTIONS.register("eca", paper="ECA-Net (CVPR 2020)")
class ECAChannelAttention(nn.Module):
    """ECA channel attention: sigmoid(conv1d over the pooled channels) scales each channel."""

    def __init__(self, channels: int, kernel_size: int | None = None):
        super().__init__()
        k = kernel_size or eca_kernel_size(channels)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)
        self.last_map: torch.Tensor | None = None

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3))[:, None]  # (B, 1, C): GAP, channels as a sequence
        return torch.sigmoid(self.conv(y))[:, 0, :, None, None]  # (B, C, 1, 1), eq. (12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        w = self.attention_map(x)
        self.last_map = w.detach()
        return x * w
