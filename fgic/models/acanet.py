"""ACANet-18 and its ablations (Fig. 1, Fig. 2(c), Table 4 of the ACANet paper).

Tan & Xu, "ACANet: A Fine-grained Image Classification Optimization Method Based on Convolution and
Attention Fusion" (2023). ResNet-18 with a new residual block:

    x -> FCSA (stride s) -> BN -> ReLU -> ACCB (3x3 + 1x3 + 3x1, BNs inside) -> (+ shortcut(x)) -> ReLU

where the shortcut of the first block of stages 2-4 is the 2x2 stride-2 patchify conv + BN
(``fgic.nn.patchify``) instead of ResNet's 1x1 stride-2 conv. The stem is torchvision's ResNet stem
(7x7/2 conv, BN, ReLU, 3x3/2 max-pool), so 64 px inputs stay cheap.

Choices where the paper is vague (the figures are not in the text we have):
- Position of the modules: the ablation "ACCB and FCSA is replaced by 3x3 convolution successively" says
  each takes the place of one of the BasicBlock's two 3x3 convs. We put FCSA first (it carries the
  block's stride, and the downsampling layer is described as designed "for FCSA") and ACCB second; Fig.
  1's caption names the fusion module first as well. Every block of every stage gets them, unless
  ``fcsa_stages`` restricts FCSA to some stages (a knob for cheap CPU profiles).
- Ablations (Table 4): ``acanet18_no_accb`` = "Minus ACCB" (3x3 conv + BN in place of ACCB);
  ``acanet18_plain`` = "Minus (FCSA+ACCB)" (both replaced by 3x3 convs). Both keep the patchify
  shortcuts by default, since the row labels only name FCSA and ACCB; but the paper's discussion says it
  cannot tell the attention from "the new downsampling layer" in that row, so ``down="conv"`` gives the
  other reading (``acanet18_plain(down="conv")`` is exactly torchvision's ResNet-18 architecture).
- Patchify in the stem: off by default (``patch_stem=True`` swaps the stem max-pool for a 2x2/2 conv).
- Training from scratch (the paper trains 600 epochs from lr 0.1): there are no ImageNet weights, so
  ``pretrained=True`` raises; a path to a state dict of this model loads.
- ``width`` scales every stage (64 -> 64, 128, 256, 512 as ResNet-18); it must be divisible by
  ``num_heads``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from fgic.models.base import ClassifierNet, torchvision_init
from fgic.models.pretrained import PretrainedWeightsError, load_into, load_state_dict_file
from fgic.models.registry import register_model
from fgic.nn.acb import ACCB
from fgic.nn.fcsa import FCSA
from fgic.nn.patchify import Patchify


def conv3x3_bn(in_chs: int, out_chs: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, 3, stride, 1, bias=False), nn.BatchNorm2d(out_chs))


class ACABlock(nn.Module):
    """The ACANet residual block (a BasicBlock with FCSA and ACCB); each can be switched to a 3x3 conv."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        fcsa: bool = True,
        accb: bool = True,
        down: str = "patch",
        num_heads: int = 4,
        kernel_att: int = 7,
    ):
        super().__init__()
        if fcsa:
            self.conv1 = FCSA(in_chs, out_chs, stride, num_heads=num_heads, kernel_att=kernel_att)
        else:
            self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = ACCB(out_chs, out_chs) if accb else conv3x3_bn(out_chs, out_chs)  # BN included
        if stride == 1 and in_chs == out_chs:
            self.shortcut = nn.Identity()
        elif down == "patch" and stride == 2:
            self.shortcut = Patchify(in_chs, out_chs, patch_size=2)  # Fig. 2(c), dashed curve
        elif down in ("patch", "conv"):
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_chs, out_chs, 1, stride, bias=False), nn.BatchNorm2d(out_chs)
            )
        else:
            raise ValueError(f"down must be 'patch' or 'conv', got {down!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) -> (B, Cout, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)
        return self.relu(out + self.shortcut(x))


def acanet_features(
    width: int = 64,
    layers: tuple[int, ...] = (2, 2, 2, 2),
    fcsa: bool = True,
    accb: bool = True,
    down: str = "patch",
    patch_stem: bool = False,
    fcsa_stages: tuple[int, ...] = (1, 2, 3, 4),
    num_heads: int = 4,
    kernel_att: int = 7,
) -> nn.Sequential:
    """Stem + four stages, (B, 3, H, W) -> (B, 8*width, H/32, W/32); children named like torchvision's."""
    stem_pool = Patchify(width, width) if patch_stem else nn.MaxPool2d(3, 2, 1)
    mods: OrderedDict[str, nn.Module] = OrderedDict(
        conv1=nn.Conv2d(3, width, 7, 2, 3, bias=False),
        bn1=nn.BatchNorm2d(width),
        relu=nn.ReLU(inplace=True),
        maxpool=stem_pool,
    )
    in_chs = width
    for i, n in enumerate(layers, start=1):
        out_chs = width * 2 ** (i - 1)
        blocks = []
        for j in range(n):
            stride = 2 if (i > 1 and j == 0) else 1
            use_fcsa = fcsa and i in fcsa_stages
            blocks.append(ACABlock(in_chs, out_chs, stride, use_fcsa, accb, down, num_heads, kernel_att))
            in_chs = out_chs
        mods[f"layer{i}"] = nn.Sequential(*blocks)
    feats = torchvision_init(nn.Sequential(mods))
    for m in feats.modules():
        if isinstance(m, FCSA):
            m.reset_shift()  # keep the shift initialisation of the FCSA convolution path
    return feats


def _acanet(
    num_classes: int,
    pretrained: bool | str,
    fcsa: bool,
    accb: bool,
    width: int = 64,
    drop_rate: float = 0.0,
    **kw,
) -> ClassifierNet:
    model = ClassifierNet(
        acanet_features(width, fcsa=fcsa, accb=accb, **kw), 8 * width, num_classes, drop_rate=drop_rate
    )
    if pretrained is True:
        raise PretrainedWeightsError(
            "ACANet has no public ImageNet weights (the paper trains it from scratch); pass pretrained=False "
            "or a path to a state dict saved from this model."
        )
    if pretrained:
        load_into(model, load_state_dict_file(pretrained), skip_prefixes=("fc.",))
    return model


@register_model("acanet18", paper="000")
def acanet18(num_classes: int, pretrained: bool | str = False, **kw) -> ClassifierNet:
    """ACANet-18: FCSA + ACCB blocks, patchify shortcuts. kw: width, drop_rate, down, patch_stem, ..."""
    return _acanet(num_classes, pretrained, fcsa=True, accb=True, **kw)


@register_model("acanet18_no_accb", paper="000")
def acanet18_no_accb(num_classes: int, pretrained: bool | str = False, **kw) -> ClassifierNet:
    """Table 4 "Minus ACCB": FCSA kept, ACCB replaced by a 3x3 conv + BN."""
    return _acanet(num_classes, pretrained, fcsa=True, accb=False, **kw)


@register_model("acanet18_plain", paper="000")
def acanet18_plain(num_classes: int, pretrained: bool | str = False, **kw) -> ClassifierNet:
    """Table 4 "Minus (FCSA+ACCB)": both replaced by 3x3 convs; patchify shortcuts kept unless down="conv"."""
    return _acanet(num_classes, pretrained, fcsa=False, accb=False, **kw)
