"""ACCB in every residual unit: each 3x3 conv + BN becomes an asymmetric convolution block (paper 000, ACANet).

Tan & Xu, "ACANet: A Fine-grained Image Classification Optimization Method Based on Convolution and Attention
Fusion" (2023), section 3.1, eqs. (1)-(4); the block is ``fgic.nn.acb.ACCB`` (3x3 + 1x3 + 3x1 convs, a BN in each
branch, summed). Training-time branches only: ``fgic.models.reparameterize(model)`` folds the BNs and kernels
into one 3x3 conv per block (eq. (4)) and, in eval mode, the fused network gives the same outputs.

Where: every 3x3 conv of every residual unit with the BN that follows it (both convs of a BasicBlock, the middle
conv of a Bottleneck), at that conv's stride; the unit's BN becomes ``nn.Identity`` since ACCB carries its BNs
(as in ACANet's block). ACANet itself puts ACCB only in place of its BasicBlock's second conv (the first is FCSA);
with FCSA a module of its own here, ACCB takes every 3x3 conv, as ACNet (Ding et al. 2019) does. The stem's
7x7 conv stays a plain conv (it is not part of a residual unit).

Choices: the square branch starts as the conv it replaces and its BN as that conv's BN (so pretrained trunk
weights are kept; without them it is torchvision's initialisation either way); the 1x3 and 3x1 branches are new,
with torchvision's initialisation (Kaiming-normal convs, BN weight 1, bias 0).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fgic.models.study import STUDY_MODULES, StudyResNet, torchvision_init, unit_convs3x3
from fgic.nn.acb import ACCB


@STUDY_MODULES.register("accb", paper="000", where="every 3x3 conv (+ BN) of every residual unit")
def accb(net: StudyResNet) -> None:
    """ACANet's ACCB (3x3 + 1x3 + 3x1 convs, fusable) for every 3x3 conv of the residual units."""
    for _, unit in net.units():
        for conv_name, bn_name in unit_convs3x3(unit):
            conv, bn = getattr(unit, conv_name), getattr(unit, bn_name)
            block = torchvision_init(ACCB(conv.in_channels, conv.out_channels, 3, conv.stride[0]))
            with torch.no_grad():
                block.square.weight.copy_(conv.weight)  # (Cout, Cin, 3, 3): the square branch is the old conv
            block.square_bn.load_state_dict(bn.state_dict())  # ... and its BN (running statistics included)
            setattr(unit, conv_name, block)  # eq. (1): square + horizontal + vertical branches, each with BN
            setattr(unit, bn_name, nn.Identity())  # the BN is inside ACCB's branches now
