"""FCN / CAM head: a 1x1-convolution classifier that yields class activation maps directly.

Seed 001, "Multi-Attention Mechanism Fusion for Fine-Grained Image Classification" (Du, Ma), section
2.2: the FC layer is replaced by an FCN whose 1x1 kernels act as "a pixel-level FC layer", giving a
per-pixel class response (the "CAM attention" of FCN-ResNet50). The CAM idea is Zhou et al., "Learning
Deep Features for Discriminative Localization" (CVPR 2016).

With weights W (K, C) and bias b the head computes

    CAM_k(i, j) = W_k . f(i, j) + b_k                  (B, K, h, w)
    logit_k     = mean_ij CAM_k(i, j) = W_k . GAP(f) + b_k

so the logits are exactly those of global average pooling followed by a linear layer (linearity of the
mean); the paper's FCN-ResNet50 is therefore the ResNet50 classifier reordered, which matches its Table 1
(76.5 vs 76.4 on CUB). What the head adds is the CAM, for free. The paper gives no other detail (no
extra layers, no spatial pooling other than the mean), so we add none.

``forward`` accepts an embedding (B, C) (then it is the linear layer) or a map (B, C, h, w) (then it
returns the spatial mean of the CAM), so it fits ``ClassifierNet.fc``.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class FCNHead(nn.Module):
    """1x1-conv classifier: ``cam(fmap)`` -> (B, K, h, w); ``forward`` -> logits (B, K)."""

    def __init__(self, in_channels: int, num_classes: int, bias: bool = True):
        super().__init__()
        self.in_features = in_channels
        self.out_features = num_classes
        self.conv = nn.Conv2d(in_channels, num_classes, kernel_size=1, bias=bias)

    def cam(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.conv(fmap)  # (B, K, h, w): the pixel-level FC layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # an embedding (B, C): a 1x1 map
            return self.cam(x[:, :, None, None]).flatten(1)  # (B, K)
        return self.cam(x).mean(dim=(2, 3))  # (B, K): spatial mean of the CAM
