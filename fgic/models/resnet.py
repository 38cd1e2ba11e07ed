"""torchvision ResNet-18/50 behind the fgic model protocol (the baselines most seeds build on).

``features`` is the stem plus ``layer1..layer4`` (stride 32); the head is global average pooling and a
linear classifier. ``pretrained=True`` loads torchvision's ImageNet-1k weights (V1) from the local
cache; the classifier is re-initialised for ``num_classes``.

``width`` (default 64, torchvision's) scales every stage's channels (width, 2w, 4w, 8w; x4 after a
bottleneck): the same architecture, narrower, for the CPU profiles. Pretrained weights need width 64.

The registered ``resnet50`` is built by ``fgic.models.multi_attention.MultiAttentionResNet`` without
attention (the same architecture, plus a ``layers`` option and ``cam(x)``); ``resnet_trunk("resnet50")``
remains for code that wants torchvision's own modules.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn
import torchvision.models as tvm

from fgic.models.base import ClassifierNet
from fgic.models.multi_attention import RESNET50_LAYERS, MultiAttentionResNet
from fgic.models.pretrained import load_into, load_state_dict_file, torchvision_state_dict
from fgic.models.registry import register_model

_WEIGHTS = {"resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1, "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V1}


_LAYOUT = {"resnet18": (tvm.resnet.BasicBlock, (2, 2, 2, 2)), "resnet50": (tvm.resnet.Bottleneck, (3, 4, 6, 3))}


class _ScaledResNet(tvm.ResNet):
    """torchvision's ResNet with stage widths (w, 2w, 4w, 8w) instead of (64, 128, 256, 512)."""

    def __init__(self, block, layers, width: int):
        nn.Module.__init__(self)
        self._norm_layer, self.dilation, self.groups, self.base_width = nn.BatchNorm2d, 1, 1, 64
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Identity()
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def resnet_trunk(arch: str, pretrained: bool | str = False, width: int = 64, **kw) -> nn.Sequential:
    """A torchvision ResNet without avgpool/fc, as ``nn.Sequential(stem, layer1..layer4)``.

    Children keep torchvision's names (``conv1, bn1, relu, maxpool, layer1..4``) so torchvision state
    dicts load directly. Extra ``kw`` go to the torchvision constructor (e.g. ``block``-level options).
    """
    if width != 64:
        if pretrained:
            raise ValueError(f"pretrained {arch} weights exist for width 64 only, not width={width}")
        block, layers = _LAYOUT[arch]
        net = _ScaledResNet(block, layers, width)
        del net.avgpool, net.fc
        return nn.Sequential(OrderedDict(net.named_children()))
    sd = None  # looked up first: missing weights fail at once, before the network is built
    if pretrained:
        sd = load_state_dict_file(pretrained) if isinstance(pretrained, str) else torchvision_state_dict(_WEIGHTS[arch])
    net = getattr(tvm, arch)(weights=None, **kw)
    if sd is not None:
        load_into(net, sd, skip_prefixes=("fc.",))
    del net.avgpool, net.fc
    return nn.Sequential(OrderedDict(net.named_children()))


def _resnet(
    arch: str, num_classes: int, pretrained: bool | str, drop_rate: float = 0.0, width: int = 64
) -> ClassifierNet:
    trunk = resnet_trunk(arch, pretrained, width=width)
    channels = 8 * width * (4 if arch == "resnet50" else 1)
    return ClassifierNet(trunk, channels, num_classes, drop_rate=drop_rate)


@register_model("resnet18", paper="baseline")
def resnet18(num_classes: int, pretrained: bool | str = False, **kw) -> ClassifierNet:
    """ResNet-18 (torchvision's at width 64), GAP + linear head; ``width`` scales the stages."""
    return _resnet("resnet18", num_classes, pretrained, **kw)


@register_model("resnet50", paper="baseline", deprecated=("plain_resnet50",))
def resnet50(
    num_classes: int,
    pretrained: bool | str = False,
    drop_rate: float = 0.0,
    width: int = 64,
    layers: tuple[int, ...] = RESNET50_LAYERS,
    attention: str = "none",
) -> ClassifierNet:
    """ResNet-50 (torchvision's at the defaults), GAP + linear head; ``width`` / ``layers`` shrink it.

    The one plain ResNet-50 of the registry: seed 001's configurable bottleneck trunk without attention
    (``fgic.models.multi_attention``), which has torchvision's parameters, names and outputs at
    ``layers=(3, 4, 6, 3), width=64`` and adds ``layers`` (blocks per stage) and ``cam(x)``. It was also
    registered as ``plain_resnet50`` (Table 1's baseline of seed 001), now a deprecated alias.
    ``attention``: any name of ``fgic.nn.registry.ATTENTIONS`` ("se", "cbam_sa", "csca", "eca", ...) puts that
    block in every bottleneck unit, before the residual addition; "none" (default) is the plain network.
    """
    return MultiAttentionResNet(num_classes, attention, "fc", layers, width, pretrained, drop_rate=drop_rate)
