"""torchvision baselines of the ACANet paper's Tables 2-3, behind the fgic model protocol.

``vgg16`` (no BN, as in the paper's table), ``vgg16_bn``, ``googlenet``, ``mobilenetv3_large``,
``densenet121`` and ``convnext_tiny_tv`` (torchvision's ConvNeXt-T; ``convnext_tiny`` is timm's). Each is
the torchvision feature extractor + ``ClassifierNet`` head (global average pool -> optional pre-logits
-> dropout -> linear). ``pretrained=True`` loads torchvision's ImageNet-1k weights from the local cache
(``fgic.models.pretrained``: raises when absent, never falls back to random weights); a string is a path
to a torchvision state dict of the same architecture. The 1000-class classifier is always dropped.

Departures from torchvision's own heads (and why):
- VGG: the 7x7 avg-pool + fc6/fc7 (4096-d, 120M parameters) head is replaced by global average pooling
  and one linear layer, the usual FGIC choice and what keeps VGG16 trainable on CPU; D = 512.
- MobileNetV3: the 960 -> 1280 linear + Hardswish of torchvision's classifier is kept as pre-logits
  (so D = 1280 and pretrained weights load into it).
- ConvNeXt-T: the final LayerNorm is kept as pre-logits on the pooled 768-d vector (same function).
- GoogLeNet: auxiliary classifiers off; with pretrained weights torchvision's ``transform_input``
  re-normalisation is kept as the first layer, as torchvision does for those weights.
- DenseNet-121: the final ReLU that torchvision applies in ``forward`` is part of ``features``.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import torch
import torch.nn as nn
import torchvision.models as tvm
from torchvision.models.vgg import cfgs, make_layers

from fgic.models.base import ClassifierNet
from fgic.models.pretrained import load_into, load_state_dict_file, torchvision_state_dict
from fgic.models.registry import register_model

_WEIGHTS = {
    "vgg16": tvm.VGG16_Weights.IMAGENET1K_V1,
    "vgg16_bn": tvm.VGG16_BN_Weights.IMAGENET1K_V1,
    "googlenet": tvm.GoogLeNet_Weights.IMAGENET1K_V1,
    "mobilenet_v3_large": tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V1,
    "densenet121": tvm.DenseNet121_Weights.IMAGENET1K_V1,
    "convnext_tiny": tvm.ConvNeXt_Tiny_Weights.IMAGENET1K_V1,
}
# old DenseNet checkpoints name layers 'norm.1' etc.; torchvision renames them on load
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _state_dict(arch: str, pretrained: bool | str) -> dict:
    """torchvision's ImageNet weights for ``arch`` (local cache / download) or a state-dict file."""
    if isinstance(pretrained, str):
        return load_state_dict_file(pretrained)
    return torchvision_state_dict(_WEIGHTS[arch])


def tv_net(arch: str, pretrained: bool | str, skip: tuple[str, ...], **kw) -> nn.Module:
    """A torchvision model (random init), then pretrained weights (cache or file) loaded except ``skip``."""
    sd = _state_dict(arch, pretrained) if pretrained else None  # first: missing weights fail before the build
    net = getattr(tvm, arch)(weights=None, **kw)
    if sd is not None:
        sd = {_DENSENET_OLD_KEY.sub(r"\1\2", k): v for k, v in sd.items()}
        load_into(net, sd, skip_prefixes=skip)
    return net


class GoogLeNetInput(nn.Module):
    """torchvision's ``transform_input``: ImageNet-normalised input -> the (x - 0.5) / 0.5 scaling."""

    def __init__(self):
        super().__init__()
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        self.register_buffer("scale", (std / 0.5).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((mean - 0.5) / 0.5).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        return x * self.scale + self.shift


def _vgg(arch: str, num_classes: int, pretrained: bool | str, drop_rate: float = 0.0) -> ClassifierNet:
    # only the conv trunk is built: torchvision's constructor would also allocate the 120M-parameter fc head
    net = nn.Module()
    net.features = make_layers(cfgs["D"], batch_norm=arch.endswith("_bn"))
    for m in net.features.modules():
        if isinstance(m, nn.Conv2d):  # torchvision's VGG initialisation
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    if pretrained:
        load_into(net, _state_dict(arch, pretrained), skip_prefixes=("classifier.",))
    return ClassifierNet(net.features, 512, num_classes, drop_rate=drop_rate)


@register_model("vgg16", paper="000")
def vgg16(num_classes: int, pretrained: bool | str = False, **kw) -> ClassifierNet:
    """VGG16 without BN (torchvision's conv trunk), GAP + linear head instead of fc6/fc7."""
    return _vgg("vgg16", num_classes, pretrained, **kw)


@register_model("vgg16_bn", paper="baseline")
def vgg16_bn(num_classes: int, pretrained: bool | str = False, **kw) -> ClassifierNet:
    """VGG16-BN (torchvision's conv trunk), GAP + linear head instead of fc6/fc7."""
    return _vgg("vgg16_bn", num_classes, pretrained, **kw)


@register_model("googlenet", paper="000")
def googlenet(num_classes: int, pretrained: bool | str = False, drop_rate: float = 0.0) -> ClassifierNet:
    """GoogLeNet (Inception v1, torchvision), auxiliary classifiers off, GAP + linear head."""
    net = tv_net("googlenet", pretrained, skip=("fc.", "aux1.", "aux2."), aux_logits=False, init_weights=True)
    mods = OrderedDict([("transform_input", GoogLeNetInput())] if pretrained else [])
    for name, m in net.named_children():
        if name in ("avgpool", "dropout", "fc"):
            break
        mods[name] = m
    return ClassifierNet(nn.Sequential(mods), 1024, num_classes, drop_rate=drop_rate)


@register_model("mobilenetv3_large", paper="000")
def mobilenetv3_large(
    num_classes: int, pretrained: bool | str = False, drop_rate: float = 0.0
) -> ClassifierNet:
    """MobileNetV3-Large (torchvision), its 960 -> 1280 Hardswish layer kept as pre-logits."""
    net = tv_net("mobilenet_v3_large", pretrained, skip=("classifier.3.",))
    pre = nn.Sequential(net.classifier[0], net.classifier[1])  # Linear(960, 1280) + Hardswish
    return ClassifierNet(
        net.features, 960, num_classes, pre_logits=pre, num_features=1280, drop_rate=drop_rate
    )


@register_model("densenet121", paper="000")
def densenet121(num_classes: int, pretrained: bool | str = False, drop_rate: float = 0.0) -> ClassifierNet:
    """DenseNet-121 (torchvision), final ReLU in the features, GAP + linear head."""
    net = tv_net("densenet121", pretrained, skip=("classifier.",))
    feats = nn.Sequential(OrderedDict(features=net.features, relu=nn.ReLU(inplace=False)))
    return ClassifierNet(feats, 1024, num_classes, drop_rate=drop_rate)


@register_model("convnext_tiny_tv", paper="000")
def convnext_tiny_tv(
    num_classes: int, pretrained: bool | str = False, drop_rate: float = 0.0
) -> ClassifierNet:
    """ConvNeXt-T from torchvision (``convnext_tiny`` is timm's), final LayerNorm as pre-logits."""
    net = tv_net("convnext_tiny", pretrained, skip=("classifier.2.",))
    norm = nn.LayerNorm(768, eps=1e-6)  # classifier[0] is a LayerNorm2d; same weights on the pooled vector
    norm.load_state_dict(net.classifier[0].state_dict())
    return ClassifierNet(net.features, 768, num_classes, pre_logits=norm, drop_rate=drop_rate)
