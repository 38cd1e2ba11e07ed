"""torchvision ResNet-18/50 behind the fgic model protocol (the baselines most seeds build on).

``features`` is the stem plus ``layer1..layer4`` (stride 32); the head is global average pooling and a
linear classifier. ``pretrained=True`` loads torchvision's ImageNet-1k weights (V1) from the local
cache; the classifier is re-initialised for ``num_classes``.
"""

from __future__ import annotations

import torch.nn as nn
import torchvision.models as tvm

from fgic.models.base import ClassifierNet
from fgic.models.pretrained import load_into, load_state_dict_file, torchvision_state_dict
from fgic.models.registry import register_model

_WEIGHTS = {"resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1, "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V1}


def resnet_trunk(arch: str, pretrained: bool | str = False, **kw) -> nn.Sequential:
    """A torchvision ResNet without avgpool/fc, as ``nn.Sequential(stem, layer1..layer4)``.

    Children keep torchvision's names (``conv1, bn1, relu, maxpool, layer1..4``) so torchvision state
    dicts load directly. Extra ``kw`` go to the torchvision constructor (e.g. ``block``-level options).
    """
    net = getattr(tvm, arch)(weights=None, **kw)
    if pretrained:
        sd = load_state_dict_file(pretrained) if isinstance(pretrained, str) else torchvision_state_dict(_WEIGHTS[arch])
        load_into(net, sd, skip_prefixes=("fc.",))
    del net.avgpool, net.fc
    return nn.Sequential(*net.children())


def _resnet(arch: str, num_classes: int, pretrained: bool | str, drop_rate: float = 0.0) -> ClassifierNet:
    trunk = resnet_trunk(arch, pretrained)
    channels = {"resnet18": 512, "resnet50": 2048}[arch]
    return ClassifierNet(trunk, channels, num_classes, drop_rate=drop_rate)


@register_model("resnet18", paper="baseline")
def resnet18(num_classes: int, pretrained: bool | str = False, **kw) -> ClassifierNet:
    return _resnet("resnet18", num_classes, pretrained, **kw)


@register_model("resnet50", paper="baseline")
def resnet50(num_classes: int, pretrained: bool | str = False, **kw) -> ClassifierNet:
    return _resnet("resnet50", num_classes, pretrained, **kw)
