"""Patchify downsampling: a p x p conv with stride p (+ BN), section 3.3 and Fig. 7(b) of the ACANet paper.

Tan & Xu, "ACANet: A Fine-grained Image Classification Optimization Method Based on Convolution and
Attention Fusion" (2023). The layer borrows the non-overlapping "patchify" stem of ViT / Swin / ConvNeXt
at patch size 2: each output pixel reads one 2x2 patch, halving H and W.

Where it sits: Fig. 2(c)'s caption says the 2x2 conv is the downsampling layer "used in the virtual
curve", i.e. the dashed residual shortcuts between stages, and section 3.3 says the input stem still
reduces the image to a quarter; so ACANet keeps torchvision's ResNet stem and uses this layer in place of
the 1x1 stride-2 shortcut conv. Fig. 7 contrasts it with the stem's 3x3 max-pool, so the stem reading is
also offered (``fgic.models.acanet`` ``patch_stem=True``), off by default.

Odd sizes: Fig. 7(b) pads "only two sides"; we pad the right and bottom with zeros up to a multiple of
p, so the output is ceil(H/p) x ceil(W/p), the same as the main path's 3x3 stride-2 conv with padding 1.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Patchify(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, patch_size: int = 2, norm: bool = True):
        super().__init__()
        self.patch_size = patch_size
        self.conv = nn.Conv2d(in_chs, out_chs, patch_size, stride=patch_size, bias=not norm)
        self.bn = nn.BatchNorm2d(out_chs) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) -> (B, Cout, ceil(H/p), ceil(W/p))
        p = self.patch_size
        pad_h, pad_w = -x.shape[-2] % p, -x.shape[-1] % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))  # right and bottom only (Fig. 7(b))
        return self.bn(self.conv(x))
