"""FCSA in the last stage: convolution and self-attention fused, in place of the units' first 3x3 conv (paper 000).

Tan & Xu, "ACANet: A Fine-grained Image Classification Optimization Method Based on Convolution and Attention
Fusion" (2023), section 3.2, eqs. (5)-(11); the block is ``fgic.nn.fcsa.FCSA`` (shared 1x1 q/k/v projections
feeding a local multi-head self-attention and a shift-and-sum convolution, mixed as alpha * att + beta * conv).

Where: every residual unit of ``layer4`` (``stages`` changes that), in place of the 3x3 conv that carries the
unit's stride (a BasicBlock's first conv, as in ACANet's block; a Bottleneck's middle conv); the BN and ReLU
after it stay (ACANet: FCSA -> BN -> ReLU). The ACANet paper puts FCSA in every stage; the study follows notebook
01's default profile and notebook 07 (``acanet18`` with ``fcsa_stages=[4]``), which keep it in the last stage
only, where its window covers most of the map and its cost is smallest.

Choice (departure, same function): a strided unit gets ``FCSA(stride=1)`` followed by a 1x1 max-pool of that
stride instead of ``FCSA(stride=s)``. Both compute the same output (FCSA reads its strided queries and conv
outputs at the positions s*i of the stride-1 result), but the pool's stride is a module stride that
``fgic.nn.stride`` can set to 1, so ``output_stride=8`` works (a strided FCSA hides its stride in a functional
call and is refused there); the price is FCSA computing all positions of that one unit. Head count 4 and a 7x7
attention window (ACmix's defaults; the paper gives none), torchvision's initialisation for the projections,
then FCSA's shift initialisation for its convolution path (as ``fgic.models.acanet``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn

from fgic.models.study import STUDY_MODULES, StudyResNet, torchvision_init, unit_convs3x3
from fgic.nn.fcsa import FCSA


def fcsa_unit_conv(in_chs: int, out_chs: int, stride: int = 1, num_heads: int = 4, kernel_att: int = 7) -> nn.Module:
    """FCSA at ``stride``: the block itself at stride 1, else ``FCSA(stride=1)`` then a 1x1 max-pool at ``stride``."""
    block = torchvision_init(FCSA(in_chs, out_chs, 1, num_heads=num_heads, kernel_att=kernel_att))
    block.reset_shift()  # the convolution path starts as exact shifts (eq. (7))
    if stride == 1:
        return block  # (B, Cin, H, W) -> (B, Cout, H, W)
    return nn.Sequential(block, nn.MaxPool2d(1, stride))  # (B, Cout, ceil(H/s), ceil(W/s)) = FCSA(stride=s)


@STUDY_MODULES.register("fcsa", paper="000", where="last stage: the strided 3x3 conv of every unit of layer4")
def fcsa(net: StudyResNet, stages: Sequence[str] = ("layer4",), num_heads: int = 4, kernel_att: int = 7) -> None:
    """ACANet's FCSA (conv + local self-attention) in place of the first 3x3 conv of the last stage's units."""
    for _, unit in net.units(*stages):
        conv_name, _ = unit_convs3x3(unit)[0]  # the conv that carries the unit's stride
        conv = getattr(unit, conv_name)
        setattr(unit, conv_name, fcsa_unit_conv(conv.in_channels, conv.out_channels, conv.stride[0],
                                                num_heads, kernel_att))
