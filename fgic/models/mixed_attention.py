"""Seed 002's networks: VGG16-BN / ResNet-50 + one attention after the last conv stage + FC-BN-ELU head.

"Mixed Attention Mechanism for Small-Sample Fine-grained Image Classification" (Li et al.), section
III-B and Tables I-II. ``{vgg16_bn,resnet50}_top`` = no attention (the "Baseline" row: the trunk with
this paper's head, which is what ``_top`` names) and ``{vgg16_bn,resnet50}_{ca,sa,ma}_top`` = one attention on
top of the trunk: ca = SE channel attention, sa = SA-Ours, ma = MA-Ours (``fgic.nn.attention_se/_spatial/
_mixed``). The former names ``{vgg16bn,resnet50}_{base,ca,sa,ma}`` still resolve, with a DeprecationWarning.

    features (ImageNet-pretrained) -> attention -> GAP -> FC(512) -> BN -> ELU -> FC(K)

``pre_logits`` is FC(512)-BN-ELU, so the embedding has D = 512 (the paper's hidden size for both data
sets). Choices where the paper is vague, and why:
- Placement: the paper adds the attention "in the last layer of modified basic models". We apply it to
  the output of the whole convolutional trunk: VGG16-BN's ``features`` (after its last max-pool, 512
  channels, 7x7 at 224 px) and ResNet-50's ``layer4`` (2048 channels, 7x7).
- Pooling: the paper says it removed ResNet-50's global average pool and replaced VGG's classifier, but
  not how the map reaches FC(512). We global-average-pool (the fgic model protocol), which keeps the head
  small and input-size agnostic; flattening the 7x7 map would give a 51 M-weight FC on ResNet-50.
- Learning rates: attention 0.1, backbone 0.01 (paper); the new FC head is not mentioned, we put it with
  the backbone: ``paper_param_groups(model)`` -> ``{"attention.": 0.1, "": 0.01}``. Every attention
  parameter lives under the module name ``attention.`` (``MixedAttentionNet.ATTENTION_PREFIX``).

CPU options (departures, off by default): ``width`` scales every VGG stage (64 -> 16 gives 128 output
channels) or the ResNet stem/stages (see ``fgic.models.multi_attention``), and ``layers`` sets ResNet's
blocks per stage. ``pretrained=True`` needs the default shapes. Note the BN in the head needs batch >= 2
in training mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn as nn
import torchvision.models as tvm
from torchvision.models.vgg import cfgs, make_layers

from fgic.models.base import ClassifierNet
from fgic.models.multi_attention import (
    ATTENTION_TYPES,
    RESNET50_LAYERS,
    attention_maps,
    attention_resnet_trunk,
    load_trunk_weights,
)
from fgic.models.pretrained import load_state_dict_file, torchvision_state_dict
from fgic.models.registry import register_model
from fgic.nn.attention_mixed import MixedAttention
from fgic.nn.attention_se import SEChannelAttention
from fgic.nn.attention_spatial import SESpatialAttention

__all__ = ["MixedAttentionNet", "attention_maps", "attention_param_prefixes", "paper_param_groups"]


def head_attention(kind: str, channels: int, reduction: int = 16, merge_init: str = "mean") -> nn.Module:
    """Seed 002's attention after the trunk: base (identity), ca, sa (SA-Ours) or ma (MA-Ours)."""
    if kind == "base":
        return nn.Identity()
    if kind == "ca":
        return SEChannelAttention(channels, reduction)
    if kind == "sa":
        return SESpatialAttention(channels, reduction)
    if kind == "ma":
        return MixedAttention(channels, reduction, merge_init)
    raise ValueError(f"unknown attention {kind!r}; choose from base, ca, sa, ma")


def vgg16bn_trunk(width: int = 64, pretrained: bool | str = False) -> nn.Sequential:
    """torchvision VGG16-BN ``features`` (13 conv-BN-ReLU, 5 max-pools, stride 32), widths x width/64."""
    if pretrained is True and width != 64:
        raise ValueError("pretrained=True needs the VGG16-BN shape: width=64")
    sd = None  # looked up first: missing weights fail at once, before the network is built
    if pretrained:
        sd = load_state_dict_file(pretrained) if isinstance(pretrained, str) else torchvision_state_dict(
            tvm.VGG16_BN_Weights.IMAGENET1K_V1)
    cfg = [v if v == "M" else v * width // 64 for v in cfgs["D"]]
    trunk = make_layers(cfg, batch_norm=True)
    for m in trunk.modules():  # torchvision VGG's init
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if sd is not None:
        if any(k.startswith("features.") for k in sd):  # a full VGG state dict: keep the trunk part
            sd = {k.removeprefix("features."): v for k, v in sd.items() if k.startswith("features.")}
        load_trunk_weights(trunk, sd)
    return trunk


def paper_head(in_features: int, hidden: int = 512) -> nn.Sequential:
    """The paper's replacement classifier before the K-way layer: FC(hidden) -> BN -> ELU."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ELU(inplace=True))


class MixedAttentionNet(ClassifierNet):
    """``features`` -> ``attention`` -> GAP -> ``pre_logits`` (FC-BN-ELU) -> ``fc``."""

    ATTENTION_PREFIX = "attention."

    def __init__(self, features: nn.Module, feature_channels: int, num_classes: int, attention: nn.Module,
                 hidden: int = 512, drop_rate: float = 0.0):
        head = paper_head(feature_channels, hidden)  # (B, C) -> (B, D = hidden)
        super().__init__(features, feature_channels, num_classes, head, hidden, drop_rate)
        self.attention = attention

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.features(x))  # (B, C, h, w)


def attention_param_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Module-name prefixes (``"name."``) of the outermost attention modules: ``("attention.",)`` for
    seed 002's networks, one per bottleneck for seed 001's, ``()`` without attention."""
    prefixes: list[str] = []
    for name, m in model.named_modules():
        if isinstance(m, ATTENTION_TYPES) and not any((name + ".").startswith(p) for p in prefixes):
            prefixes.append(name + ".")
    return tuple(prefixes)


def paper_param_groups(model: nn.Module, attention_lr: float = 0.1, base_lr: float = 0.01) -> dict:
    """Seed 002's learning rates as a prefix -> lr mapping: attention 0.1, everything else 0.01."""
    return {**{p: attention_lr for p in attention_param_prefixes(model)}, "": base_lr}


def _vgg(kind: str, num_classes: int, pretrained: bool | str, width: int = 64, reduction: int = 16,
         merge_init: str = "mean", hidden: int = 512, drop_rate: float = 0.0) -> MixedAttentionNet:
    channels = 512 * width // 64
    attn = head_attention(kind, channels, reduction, merge_init)
    return MixedAttentionNet(vgg16bn_trunk(width, pretrained), channels, num_classes, attn, hidden, drop_rate)


def _resnet(kind: str, num_classes: int, pretrained: bool | str, width: int = 64,
            layers: Sequence[int] = RESNET50_LAYERS, reduction: int = 16, merge_init: str = "mean",
            hidden: int = 512, drop_rate: float = 0.0) -> MixedAttentionNet:
    channels = width * 32
    attn = head_attention(kind, channels, reduction, merge_init)
    trunk = attention_resnet_trunk(layers, width, None, pretrained)
    return MixedAttentionNet(trunk, channels, num_classes, attn, hidden, drop_rate)


# seed 002's variants: kind -> (name suffix, what sits on top of the trunk); the former names were
# vgg16bn_<kind> and resnet50_<kind>. factory(num_classes, pretrained=False, **kw)
SEED2 = {"base": ("top", ""), "ca": ("ca_top", "SE channel attention"), "sa": ("sa_top", "SA-Ours spatial attention"),
         "ma": ("ma_top", "MA-Ours mixed attention")}
for _kind, (_suffix, _what) in SEED2.items():
    _desc = f"+ {_what} on top" if _what else "(Table II baseline: no attention)"
    _desc = f"trunk {_desc} + FC(512)-BN-ELU head"
    register_model(f"vgg16_bn_{_suffix}", paper="002", deprecated=(f"vgg16bn_{_kind}",),
                   description=f"VGG16-BN {_desc}")(partial(_vgg, _kind))
    register_model(f"resnet50_{_suffix}", paper="002", deprecated=(f"resnet50_{_kind}",),
                   description=f"ResNet-50 {_desc}")(partial(_resnet, _kind))
