"""ACCB: Asymmetric Convolution and Convolution Block (section 3.1 of the ACANet paper).

Tan & Xu, "ACANet: A Fine-grained Image Classification Optimization Method Based on Convolution and
Attention Fusion" (2023); the block follows ACNet (Ding et al. 2019) and the re-parameterisation idea of
RepVGG / DBB cited there.

Training time: a square k x k conv + BN, a 1 x k conv + BN and a k x 1 conv + BN read the same input
at the same stride, and their outputs are summed (eq. (1)). Deployment: ``reparameterize()`` folds each
BN into its conv (eqs. (2), (3)), adds the 1 x k kernel into the centre row and the k x 1 kernel into the
centre column of the square kernel, and keeps a single k x k conv with bias (eq. (4)); after that the
module computes exactly the same function (in eval mode) at the cost of one plain conv.

Choices: the block replaces a "conv + BN" pair (the BNs are inside the branches, as in ACNet), so a
residual block that uses it has no separate BN after it. Any odd ``kernel_size`` works; the paper uses 3.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def fuse_conv_bn(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BN that follows a bias-free conv into (kernel, bias)."""
    std = (bn.running_var + bn.eps).sqrt()  # sigma
    scale = bn.weight / std  # gamma / sigma, the factor of eq. (2) of the ACANet paper
    kernel = weight * scale.reshape(-1, 1, 1, 1)
    bias = bn.bias - bn.running_mean * scale  # one term of eq. (3) of the ACANet paper
    return kernel, bias


class ACCB(nn.Module):
    """Sum of a k x k, a 1 x k and a k x 1 conv (each with BN); fusable into one k x k conv."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"ACCB needs an odd kernel_size, got {kernel_size}")
        k, p = kernel_size, kernel_size // 2
        self.in_chs, self.out_chs, self.kernel_size, self.stride, self.groups = (
            in_chs,
            out_chs,
            k,
            stride,
            groups,
        )
        self.deployed = False
        self.square = nn.Conv2d(in_chs, out_chs, (k, k), stride, (p, p), groups=groups, bias=False)
        self.square_bn = nn.BatchNorm2d(out_chs)
        self.hor = nn.Conv2d(in_chs, out_chs, (1, k), stride, (0, p), groups=groups, bias=False)  # 1 x k
        self.hor_bn = nn.BatchNorm2d(out_chs)
        self.ver = nn.Conv2d(in_chs, out_chs, (k, 1), stride, (p, 0), groups=groups, bias=False)  # k x 1
        self.ver_bn = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) -> (B, Cout, H/s, W/s)
        if self.deployed:
            return self.fused(x)
        # eq. (1) of the ACANet paper: outputs of compatible kernels at the same stride add up
        return self.square_bn(self.square(x)) + self.hor_bn(self.hor(x)) + self.ver_bn(self.ver(x))

    @torch.no_grad()
    def fused_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single k x k kernel and bias equivalent to the three branches in eval mode."""
        c = self.kernel_size // 2
        k_sq, b_sq = fuse_conv_bn(self.square.weight, self.square_bn)
        k_h, b_h = fuse_conv_bn(self.hor.weight, self.hor_bn)  # (Cout, Cin/g, 1, k)
        k_v, b_v = fuse_conv_bn(self.ver.weight, self.ver_bn)  # (Cout, Cin/g, k, 1)
        kernel = k_sq.clone()
        kernel[:, :, c : c + 1, :] += k_h  # 1 x k into the centre row, eq. (2) of the ACANet paper
        kernel[:, :, :, c : c + 1] += k_v  # k x 1 into the centre column
        return kernel, b_sq + b_h + b_v  # eq. (3) of the ACANet paper

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the three branches by one conv with bias (eq. (4)); idempotent."""
        if self.deployed:
            return
        kernel, bias = self.fused_kernel_bias()
        k, p = self.kernel_size, self.kernel_size // 2
        self.stride = self.square.stride[0]  # the branches' stride now (``fgic.nn.stride`` may have set it to 1)
        self.fused = nn.Conv2d(self.in_chs, self.out_chs, k, self.stride, p, groups=self.groups, bias=True)
        self.fused.to(device=kernel.device, dtype=kernel.dtype)
        self.fused.weight.copy_(kernel)
        self.fused.bias.copy_(bias)
        for name in ("square", "square_bn", "hor", "hor_bn", "ver", "ver_bn"):
            delattr(self, name)
        self.deployed = True

    def extra_repr(self) -> str:
        k, s = self.kernel_size, self.stride
        return f"{self.in_chs}, {self.out_chs}, k={k}, stride={s}, deployed={self.deployed}"
