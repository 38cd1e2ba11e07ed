"""Seed 001's networks: ResNet50 with an attention block in every bottleneck unit, or an FCN / CAM-attention head.

"Multi-Attention Mechanism Fusion for Fine-Grained Image Classification" (Du, Ma), section 2.1 and
Table 1: FCN-ResNet50, CA-ResNet50, SA-ResNet50 and CSCA-ResNet50 against the torchvision ResNet50, all
initialised from torchvision's ImageNet weights. Names follow ``<backbone>_<module>_<where>`` (README,
"Model names"); the former names (``ca_resnet50``, ...) still resolve, with a ``DeprecationWarning``.

- ``resnet50_{ca,sa,csca}_units``: the attention (``fgic.nn``: SE channel attention, CBAM spatial attention,
  and CA-then-SA) sits in every bottleneck unit after the third conv + BN and before the residual addition
  (the SE-ResNet / CBAM placement; the paper only says "embedded in the residual structure unit").
- ``resnet50_cam_head``: the Table 1 "FCN-ResNet50" row as we read it: the plain trunk with a CAM-attention
  head (``fgic.nn.cam_attention``): the class activation maps of the top-5 classes, min-max normalised,
  reweight the last feature map (1 + A) before global pooling; the CAM is W f + b with the classifier's
  own weights. The paper names "CAM attention" but does not define it; this is our choice.
- ``resnet50_fcn_head``: the plain trunk with the FC replaced by a 1x1-conv FCN head (``fgic.nn.fcn_head``);
  logits are the spatial mean of its CAM, which equals GAP + FC (linearity of the mean): it is ResNet50
  with its classifier reordered, kept only to show that equality.
- the Table 1 baseline is the registry's ``resnet50`` (formerly also ``plain_resnet50``): this module's
  trunk without attention and with the linear head, which is torchvision's ResNet50 at the default options
  (same parameters and outputs for the same weights), with the same ``layers`` / ``width`` options.

Options for CPU profiles (documented departures, off by default):
``layers`` = blocks per stage (default (3, 4, 6, 3); (2, 2, 2, 2) gives a bottleneck "ResNet-26") and
``width`` = stem / first-stage width (default 64; stages use width * (1, 2, 4, 8) and output 4x that, so
``width=16`` ends in 512 channels instead of 2048). ``pretrained=True`` needs the default shape; a
weights file must match the trunk exactly except for the new attention parameters, which stay random.

Every network has ``cam(x)`` -> (B, K, h, w) class activation maps, and ``attention_maps(model)`` returns
the last maps of all its attention blocks by module name.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn as nn
import torchvision.models as tvm
from torchvision.models.resnet import BasicBlock, Bottleneck

from fgic.models.base import ClassifierNet
from fgic.models.pretrained import (
    PretrainedWeightsError,
    load_state_dict_file,
    torchvision_state_dict,
)
from fgic.models.registry import register_model
from fgic.nn.attention_csca import ChannelSpatialAttention
from fgic.nn.attention_eca import ECAChannelAttention
from fgic.nn.attention_mixed import MixedAttention
from fgic.nn.attention_se import SEChannelAttention
from fgic.nn.attention_spatial import CBAMSpatialAttention, SESpatialAttention
from fgic.nn.cam_attention import CAMAttention
from fgic.nn.fcn_head import FCNHead
from fgic.nn.registry import ATTENTIONS, create_attention

HEADS = ("fc", "fcn", "cam")  # linear on GAP / 1x1-conv FCN (= GAP + FC) / CAM-attention pooling

RESNET50_LAYERS = (3, 4, 6, 3)
ATTENTION_TYPES = (SEChannelAttention, SESpatialAttention, CBAMSpatialAttention, ChannelSpatialAttention,
                   MixedAttention, ECAChannelAttention)


SEED1_ATTENTION = {"ca": "se", "sa": "cbam_sa", "csca": "csca"}  # seed 001's names -> fgic.nn.registry names


def block_attention(kind: str, reduction: int = 16) -> Callable[[int], nn.Module] | None:
    """Factory ``channels -> module`` for the per-block attention ``kind``: "none", seed 001's ca / sa / csca,
    or any name of ``fgic.nn.registry.ATTENTIONS`` (e.g. "eca": one new file in fgic/nn is all it takes)."""
    if kind == "none":
        return None
    name = SEED1_ATTENTION.get(kind, kind)
    if name not in ATTENTIONS:
        raise ValueError(f"unknown attention {kind!r}; choose from none, {sorted(SEED1_ATTENTION)} or "
                         f"a registered attention {ATTENTIONS.list()}")
    kw = {"reduction": reduction} if name in ("se", "csca") else {}
    return lambda c: create_attention(name, c, **kw)


class AttentionBottleneck(Bottleneck):
    """torchvision's Bottleneck with ``attn`` applied to the residual branch before the addition."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 attn_layer: Callable[[int], nn.Module] | None = None):
        super().__init__(inplanes, planes, stride, downsample)
        self.attn = attn_layer(planes * self.expansion) if attn_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)  # (B, 4P, H', W')
        out = self.relu(self.bn1(self.conv1(x)))  # (B, P', H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, P', H', W')
        out = self.attn(self.bn3(self.conv3(out)))  # (B, 4P, H', W'): attention on the residual branch
        return self.relu(out + identity)


class AttentionBasicBlock(BasicBlock):
    """torchvision's BasicBlock with ``attn`` applied to the residual branch before the addition (ResNet-18/34).

    Same constructor as torchvision's BasicBlock (so ``ResNet._make_layer`` builds it) plus ``attn_layer`` by
    keyword; without it ``attn`` is ``nn.Identity`` (no parameters: the state dict is torchvision's).
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer: Callable | None = None,
                 *, attn_layer: Callable[[int], nn.Module] | None = None):
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, dilation, norm_layer)
        self.attn = attn_layer(planes * self.expansion) if attn_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)  # (B, P, H', W')
        out = self.relu(self.bn1(self.conv1(x)))  # (B, P, H', W')
        out = self.attn(self.bn2(self.conv2(out)))  # (B, P, H', W'): attention on the residual branch
        return self.relu(out + identity)


def load_trunk_weights(trunk: nn.Module, sd: dict) -> None:
    """Load ``sd`` into ``trunk``: every trunk tensor must come from it except the new ``attn.`` ones."""
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    own = trunk.state_dict()
    unexpected = [k for k in sd if k not in own]
    missing = [k for k in own if k not in sd and ".attn." not in k and not k.endswith("num_batches_tracked")]
    if unexpected or missing:
        raise PretrainedWeightsError(
            f"weights do not match this trunk (unexpected {unexpected[:4]}, missing {missing[:4]}); "
            "ImageNet weights exist only for the default layers=(3, 4, 6, 3), width=64"
        )
    try:
        trunk.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise PretrainedWeightsError(f"weights do not fit this trunk: {e}") from e


def attention_resnet_trunk(
    layers: Sequence[int] = RESNET50_LAYERS,
    width: int = 64,
    attn_layer: Callable[[int], nn.Module] | None = None,
    pretrained: bool | str = False,
) -> nn.Sequential:
    """Bottleneck ResNet trunk (stem + layer1..4, stride 32) named like torchvision's, attention per block."""
    if pretrained is True and (tuple(layers) != RESNET50_LAYERS or width != 64):
        raise ValueError("pretrained=True needs the ResNet50 shape: layers=(3, 4, 6, 3), width=64")
    sd = None  # looked up first: missing weights fail at once, before the network is built
    if pretrained:
        is_file = isinstance(pretrained, str)
        sd = load_state_dict_file(pretrained) if is_file else torchvision_state_dict(
            tvm.ResNet50_Weights.IMAGENET1K_V1)
    stem = [("conv1", nn.Conv2d(3, width, 7, 2, 3, bias=False)), ("bn1", nn.BatchNorm2d(width)),
            ("relu", nn.ReLU(inplace=True)), ("maxpool", nn.MaxPool2d(3, 2, 1))]
    stages, inplanes = [], width
    for i, n in enumerate(layers):
        planes, stride = width * 2**i, 1 if i == 0 else 2
        down = None
        if stride != 1 or inplanes != planes * 4:
            down = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                                 nn.BatchNorm2d(planes * 4))
        blocks = [AttentionBottleneck(inplanes, planes, stride, down, attn_layer)]
        blocks += [AttentionBottleneck(planes * 4, planes, attn_layer=attn_layer) for _ in range(1, n)]
        stages.append((f"layer{i + 1}", nn.Sequential(*blocks)))
        inplanes = planes * 4
    trunk = nn.Sequential(OrderedDict(stem + stages))
    for name, m in trunk.named_modules():  # torchvision's init for the trunk; attention keeps its own
        if ".attn" in name:
            continue
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if sd is not None:
        load_trunk_weights(trunk, sd)
    return trunk


class MultiAttentionResNet(ClassifierNet):
    """ResNet trunk with per-block attention and a linear (``head="fc"``), FCN (``"fcn"``) or CAM-attention
    (``"cam"``, ``top_k`` classes) head."""

    def __init__(self, num_classes: int, attention: str = "none", head: str = "fc",
                 layers: Sequence[int] = RESNET50_LAYERS, width: int = 64, pretrained: bool | str = False,
                 reduction: int = 16, drop_rate: float = 0.0, top_k: int = 5):
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        trunk = attention_resnet_trunk(layers, width, block_attention(attention, reduction), pretrained)
        super().__init__(trunk, width * 8 * 4, num_classes, drop_rate=drop_rate)
        self.attention_kind, self.head_kind, self.top_k = attention, head, top_k
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        if self.head_kind == "fcn":
            self.fc = FCNHead(self.num_features, num_classes)
        elif self.head_kind == "cam":
            self.fc = CAMAttention(self.num_features, num_classes, self.top_k)

    def forward_head(self, fmap: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.head_kind != "cam":
            return super().forward_head(fmap, pre_logits)
        z = self.fc.pool(fmap)  # (B, C): CAM-attention pooling instead of the plain mean
        return z if pre_logits else self.classify(z)

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps (B, K, h, w) of the last feature map: sum_c W_kc f_c + b_k. For the fc and
        fcn heads their spatial mean is the logits; for the cam head the logits weight them by 1 + A."""
        fmap = self.forward_features(x)  # (B, C, h, w)
        if isinstance(self.fc, (FCNHead, CAMAttention)):
            return self.fc.cam(fmap)
        return torch.einsum("kc,bchw->bkhw", self.fc.weight, fmap) + self.fc.bias[None, :, None, None]


def attention_maps(model: nn.Module) -> dict[str, torch.Tensor]:
    """Last attention map of every outermost attention module (after a forward pass), by module name."""
    maps, seen = {}, []
    for name, m in model.named_modules():
        if isinstance(m, ATTENTION_TYPES) and not any(name.startswith(p + ".") for p in seen):
            seen.append(name)
            if m.last_map is not None:
                maps[name] = m.last_map
    return maps


def _multi_attention_resnet50(attention: str, head: str, num_classes: int, pretrained: bool | str = False, **kw):
    return MultiAttentionResNet(num_classes, attention, head, pretrained=pretrained, **kw)


# seed 001's networks: name -> (attention in every bottleneck, head, former name, description); the plain
# trunk with the linear head is the registry's ``resnet50`` (fgic.models.resnet), formerly ``plain_resnet50``
SEED1 = {
    "resnet50_fcn_head": ("none", "fcn", "fcn_resnet50",
                          "ResNet-50 with a 1x1-conv FCN head: logits = mean of its CAM (= GAP + FC, kept to show it)"),
    "resnet50_cam_head": ("none", "cam", "cam_resnet50",
                          "ResNet-50 with a CAM-attention head: top-5 class maps reweight the features before pooling"),
    "resnet50_ca_units": ("ca", "fc", "ca_resnet50", "ResNet-50 with SE channel attention in every bottleneck unit"),
    "resnet50_sa_units": ("sa", "fc", "sa_resnet50", "ResNet-50 with CBAM spatial attention in every bottleneck unit"),
    "resnet50_csca_units": ("csca", "fc", "csca_resnet50",
                            "ResNet-50 with channel-then-spatial attention (CSCA) in every bottleneck unit"),
}
for _name, (_attn, _head, _old, _desc) in SEED1.items():
    register_model(_name, paper="001", deprecated=(_old,), description=_desc)(
        partial(_multi_attention_resnet50, _attn, _head))
