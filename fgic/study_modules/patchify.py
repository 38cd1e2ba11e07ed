"""Patchify shortcuts: the 2x2 stride-2 conv + BN in place of the 1x1 stride-2 shortcut conv (paper 000).

Tan & Xu, "ACANet: A Fine-grained Image Classification Optimization Method Based on Convolution and Attention
Fusion" (2023), section 3.3, Fig. 2(c) and Fig. 7(b); the layer is ``fgic.nn.patchify.Patchify`` (each output
pixel reads one 2x2 patch; odd sizes padded right and bottom, so the output is ceil(H/2) x ceil(W/2), like the
main path's 3x3 stride-2 conv).

Where: the shortcut (``downsample``) of every strided residual unit, i.e. the first unit of layer2..layer4 (the
dashed curves of Fig. 2(c)); the stem keeps its max-pool (section 3.3: the stem still reduces the image to a
quarter). A Bottleneck's stride-1 projection shortcut of layer1 (channels only) stays a 1x1 conv, as in
``fgic.models.acanet``. torchvision's initialisation for the new conv and BN.
"""

from __future__ import annotations

from fgic.models.study import STUDY_MODULES, StudyResNet, torchvision_init
from fgic.nn.patchify import Patchify


@STUDY_MODULES.register("patchify", paper="000", where="shortcut of every strided unit (first unit of layer2-4)")
def patchify(net: StudyResNet) -> None:
    """ACANet's 2x2 stride-2 patchify conv + BN as the shortcut of every downsampling unit."""
    for _, unit in net.units():
        down = unit.downsample  # None, or Sequential(1x1 conv at the unit's stride, BN)
        if down is not None and down[0].stride != (1, 1):
            conv = down[0]
            unit.downsample = torchvision_init(Patchify(conv.in_channels, conv.out_channels, conv.stride[0]))
