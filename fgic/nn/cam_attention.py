"""CAM attention: the class activation maps of the top classes reweight the last feature map before pooling.

Seed 001, "Multi-Attention Mechanism Fusion for Fine-Grained Image Classification" (Du, Ma), section 2.2
and Table 1 ("FCN-ResNet50"): the FC layer becomes an FCN whose 1x1 kernels act as "a pixel-level FC
layer", and the paper names a "CAM attention" on top of it, but never defines it. CAM: Zhou et al.,
"Learning Deep Features for Discriminative Localization" (CVPR 2016).

Why a plain FCN head is not an attention: with weights W (K, C) and bias b, CAM_k(i, j) = W_k . f(i, j)
+ b_k, and the spatial mean of the CAM is W_k . GAP(f) + b_k, exactly GAP followed by the linear layer
(``fgic.nn.fcn_head``). So "FCN-ResNet50" with a mean-pooled FCN head is ResNet50, and its Table 1 row can
only differ from ResNet50 by noise (as the paper's 76.5 vs 76.4 on CUB).

Our reading of "CAM attention" (a choice; the paper gives no formula), with f the last feature map
(B, C, h, w) and the classifier (W, b) shared by the CAM and the logits:

    CAM_k      = W_k . f + b_k                                   (B, K, h, w), Zhou et al. eq. (1)-(2)
    T          = the top_k classes of GAP(CAM) (the FCN logits)  per image
    M          = mean_{k in T} CAM_k                             (B, h, w)
    A          = (M - min M) / (max M - min M)                   (B, h, w) in [0, 1], per image
    g          = mean_ij (1 + A_ij) f_ij                         (B, C): residual reweighting, then pooling
    logits     = W g + b                                         (B, K)

so the cells where the likely classes respond count up to twice as much as the others. The residual
form (1 + A, as in residual attention networks) keeps every cell's gradient and makes the head equal to
GAP + FC only when A is constant. ``top_k`` = 5 by default (min(5, K)); the class selection is the
network's own prediction, never the label, so training and testing use the same path. ``cam(f)`` is the
CAM above (the weighted channel sum of the feature map plus the bias), ``attention(f)`` is A.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class CAMAttention(nn.Module):
    """Classifier with CAM-attention pooling: ``pool(fmap)`` -> (B, C); ``forward`` -> logits (B, K).

    ``forward`` takes the feature map (B, C, h, w) (attention pooling, then the linear layer) or an
    already pooled embedding (B, C) (the linear layer), so it fits ``ClassifierNet.fc``.
    """

    def __init__(self, in_channels: int, num_classes: int, top_k: int = 5):
        super().__init__()
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.in_features, self.out_features, self.top_k = in_channels, num_classes, top_k
        self.fc = nn.Linear(in_channels, num_classes)
        self.last_map: torch.Tensor | None = None  # A of the last forward, (B, h, w)

    @property
    def weight(self) -> torch.Tensor:
        return self.fc.weight  # (K, C)

    @property
    def bias(self) -> torch.Tensor:
        return self.fc.bias  # (K,)

    def cam(self, fmap: torch.Tensor) -> torch.Tensor:
        """Class activation maps: the weighted channel sum of the feature map plus the bias, (B, K, h, w)."""
        return torch.einsum("kc,bchw->bkhw", self.fc.weight, fmap) + self.fc.bias[None, :, None, None]

    def attention(self, fmap: torch.Tensor) -> torch.Tensor:
        """A: mean CAM of the top_k classes (by the FCN logits), min-max normalised per image, (B, h, w)."""
        cams = self.cam(fmap)  # (B, K, h, w)
        k = min(self.top_k, cams.shape[1])
        top = cams.mean((2, 3)).topk(k, dim=1).indices  # (B, k): the likely classes
        m = cams.gather(1, top[:, :, None, None].expand(-1, -1, *cams.shape[2:])).mean(1)  # (B, h, w)
        lo, hi = m.amin((1, 2), keepdim=True), m.amax((1, 2), keepdim=True)  # (B, 1, 1)
        return (m - lo) / (hi - lo).clamp_min(1e-6)  # (B, h, w) in [0, 1]

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """g = mean_ij (1 + A_ij) f_ij: the feature map reweighted by the CAM attention, then averaged, (B, C)."""
        a = self.attention(fmap)  # (B, h, w)
        self.last_map = a.detach()
        return (fmap * (1.0 + a[:, None])).mean((2, 3))  # (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = self.pool(x)  # (B, C)
        return self.fc(x)  # (B, K)
