"""The cross-paper study's backbone: one torchvision-layout ResNet into which any registered study module goes.

Notebook 06 compares the attention ideas of the five seed papers on ONE backbone trained with ONE recipe::

    create_model("study_resnet18", num_classes=K, module="se", width=8)     # BasicBlock, (2, 2, 2, 2)
    create_model("study_resnet50", num_classes=K, module="accb", width=8, layers=(1, 1, 1, 1))
    list_study_modules()                                                   # what ``module`` accepts

The network (``StudyResNet``) keeps torchvision's module names at the top level (``conv1, bn1, relu, maxpool,
layer1..layer4, fc``), so at ``width=64`` and the default ``layers`` torchvision's ImageNet weights load
(``pretrained=True`` or a file, through ``fgic.models.pretrained``) and ``module="none"`` has exactly
torchvision's state dict. It follows the fgic model protocol (``forward_features`` / ``forward_head``, from
``ClassifierNet``: GAP + dropout + linear ``fc``). Three kinds of slot take a module, all empty by default
(``nn.Identity``, no parameters):

- ``unit.attn`` in every residual unit, on the residual branch before the addition (paper 001's CA / SA /
  CSCA; ``AttentionBasicBlock`` / ``AttentionBottleneck`` of ``fgic.models.multi_attention``);
- ``after["layer1"] .. after["layer4"]``: a module on a stage's output (SCRA after stage 1, paper 004; the
  SE / softmax-SA / MA of paper 002 on top of the last stage);
- any sub-module may be replaced in place (ACCB for the 3x3 convs and FCSA in the last stage, paper 000;
  patchify shortcuts; the CAM-attention classifier of paper 001 through ``classifier_factory``).

A study module is a function ``fn(net: StudyResNet, **module_kw) -> None`` that edits the freshly built network
in place, registered in ``STUDY_MODULES`` by one file of ``fgic/study_modules/`` (found by the registry, as
``fgic/nn/registry.py`` finds ``attention_*.py``)::

    @STUDY_MODULES.register("name", paper="00x", where="after stage 2")
    def name(net, reduction=16): ...

What a module may read: ``net.arch``, ``net.block`` ("basic" / "bottleneck"), ``net.width``, ``net.layers``,
``net.stage_channels`` (output channels of layer1..4), ``net.feature_channels``, ``net.units(stage)``; the
helpers ``unit_convs3x3``, ``unit_channels``, ``set_unit_attention`` below and ``torchvision_init`` (from
``fgic.models.base``, re-exported here).

Choices: one module per network (a combination is a new module file); the head is GAP + linear for every
module (paper 002's FC(512)-BN-ELU head belongs to its recipe, not to its attention, and one recipe is the
point of the study); new modules start with their own initialisation (torchvision's for new convs, the
block's own for attention blocks), and pretrained weights fill only the trunk they were made for.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn as nn

from fgic.models.base import ClassifierNet, torchvision_init
from fgic.models.multi_attention import (
    RESNET50_LAYERS,
    AttentionBasicBlock,
    attention_resnet_trunk,
    load_trunk_weights,
)
from fgic.models.pretrained import load_state_dict_file, torchvision_state_dict
from fgic.models.registry import register_model
from fgic.models.resnet import _WEIGHTS, _ScaledResNet
from fgic.registry import Registry

__all__ = [
    "STUDY_MODULES",
    "StudyResNet",
    "describe_study_modules",
    "list_study_modules",
    "set_unit_attention",
    "torchvision_init",
    "unit_channels",
    "unit_convs3x3",
]

RESNET18_LAYERS = (2, 2, 2, 2)
STAGES = ("layer1", "layer2", "layer3", "layer4")
_ARCHS = {"resnet18": ("basic", 1, RESNET18_LAYERS), "resnet50": ("bottleneck", 4, RESNET50_LAYERS)}


def _load_study_module_files() -> None:
    """Import every module of ``fgic/study_modules/``: their decorators fill the registry (a new file is found)."""
    import fgic.study_modules as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"fgic.study_modules.{info.name}")


STUDY_MODULES = Registry("study module", loader=_load_study_module_files)


def list_study_modules(pattern: str = "") -> list[str]:
    """Registered study module names (containing ``pattern``, or matching it as a glob), sorted."""
    return STUDY_MODULES.list(pattern)


def describe_study_modules(pattern: str = "") -> list[dict]:
    """One row per study module: name, paper, where it goes, description (for a table in the notebook)."""
    return [{"name": e.name, "paper": e.paper, "where": e.extra.get("where", ""), "description": e.description}
            for e in STUDY_MODULES.entries(pattern)]


def get_study_module(name: str) -> Callable[..., None]:
    """The registered study module ``name``; an unknown name raises ``KeyError`` listing every registered one."""
    if not isinstance(name, str) or name not in STUDY_MODULES:
        raise KeyError(f"unknown study module {name!r}; registered: {', '.join(list_study_modules())}")
    return STUDY_MODULES.get(name)


# ---------------------------------------------------------------- helpers for module files


def unit_convs3x3(unit: nn.Module) -> list[tuple[str, str]]:
    """(conv, its BN) attribute names of a residual unit's 3x3 convs: both of a BasicBlock, the middle one of a
    Bottleneck (which carries the unit's stride, torchvision's "ResNet v1.5")."""
    return [("conv2", "bn2")] if hasattr(unit, "conv3") else [("conv1", "bn1"), ("conv2", "bn2")]


def unit_channels(unit: nn.Module) -> int:
    """Output channels of a residual unit (those its ``attn`` slot sees)."""
    return (unit.bn3 if hasattr(unit, "bn3") else unit.bn2).num_features


def set_unit_attention(net: StudyResNet, factory: Callable[[int], nn.Module], stages: Sequence[str] = STAGES) -> None:
    """Put ``factory(channels)`` in the ``attn`` slot of every residual unit of ``stages`` (before the addition)."""
    for _, unit in net.units(*stages):
        unit.attn = factory(unit_channels(unit))


# ---------------------------------------------------------------- the network


def _trunk(arch: str, layers: tuple[int, ...], width: int, pretrained: bool | str) -> nn.Sequential:
    """conv1, bn1, relu, maxpool, layer1..4 with an empty ``attn`` slot in every unit, weights loaded if asked."""
    if arch == "resnet50":  # paper 001's configurable bottleneck trunk (loads and checks weights itself)
        return attention_resnet_trunk(layers, width, None, pretrained)
    if pretrained is True and (layers != RESNET18_LAYERS or width != 64):
        raise ValueError("pretrained=True needs the ResNet18 shape: layers=(2, 2, 2, 2), width=64")
    sd = None  # looked up first: missing weights fail at once, before the network is built
    if pretrained:
        sd = load_state_dict_file(pretrained) if isinstance(pretrained, str) else torchvision_state_dict(
            _WEIGHTS["resnet18"])
    net = _ScaledResNet(AttentionBasicBlock, layers, width)  # torchvision's layout and init, at any width
    del net.avgpool, net.fc
    trunk = nn.Sequential(OrderedDict(net.named_children()))
    if sd is not None:
        load_trunk_weights(trunk, sd)  # every trunk tensor from the file (fc and ``attn`` excepted)
    return trunk


class StudyResNet(ClassifierNet):
    """torchvision ResNet-18 / 50 (names at the top level) with a study module slot; ClassifierNet's head.

    ``forward_features``: stem -> (layer_i -> after[layer_i]) for i = 1..4, (B, 3, H, W) -> (B, C, H/32, W/32).
    A classifier with a ``pool(fmap)`` method (paper 001's CAM attention) pools the map itself in ``forward_head``;
    ``classifier_factory(num_features, num_classes)`` builds ``fc`` (``reset_classifier`` keeps the kind).
    """

    def __init__(self, arch: str, num_classes: int, pretrained: bool | str = False, width: int = 64,
                 layers: Sequence[int] | None = None, drop_rate: float = 0.0):
        if arch not in _ARCHS:
            raise ValueError(f"arch must be one of {sorted(_ARCHS)}, got {arch!r}")
        nn.Module.__init__(self)  # not ClassifierNet.__init__: the trunk is not nested under ``features``
        self.block, self.expansion, default_layers = _ARCHS[arch]
        self.arch, self.width = arch, width
        self.layers = tuple(layers) if layers is not None else default_layers
        if len(self.layers) != 4 or min(self.layers) < 1:
            raise ValueError(f"layers must give 4 stages of at least one unit, got {layers!r}")
        for name, m in _trunk(arch, self.layers, width, pretrained).named_children():
            self.add_module(name, m)  # conv1, bn1, relu, maxpool, layer1..4: torchvision's names
        self.stage_channels = tuple(width * 2**i * self.expansion for i in range(4))  # outputs of layer1..4
        self.after = nn.ModuleDict({s: nn.Identity() for s in STAGES})  # a module on a stage's output
        self.classifier_factory: Callable[[int, int], nn.Module] = nn.Linear
        self.init_head(self.stage_channels[-1], num_classes, drop_rate=drop_rate)  # pool, drop, fc
        self.study_module, self.study_module_kw = "none", {}
        self.new_param_prefixes: tuple[str, ...] = ("fc.",)  # parameters no pretrained file holds (L2SP)

    def units(self, *stages: str) -> Iterator[tuple[str, nn.Module]]:
        """(stage name, residual unit) for every unit of ``stages`` (default all four), in forward order."""
        for s in stages or STAGES:
            for unit in getattr(self, s):
                yield s, unit

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, w, H/4, W/4)
        for s in STAGES:
            x = self.after[s](getattr(self, s)(x))  # (B, C_i, H/2^(i+1), W/2^(i+1)): the stage, then its slot
        return x  # (B, C, H/32, W/32)

    def forward_head(self, fmap: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pool = getattr(self.fc, "pool", None)
        if not callable(pool):
            return super().forward_head(fmap, pre_logits)  # GAP -> (B, C)
        z = self.pre_logits(pool(fmap))  # (B, C): the classifier's own pooling (CAM attention)
        return z if pre_logits else self.classify(z)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = self.classifier_factory(self.num_features, num_classes)

    def extra_repr(self) -> str:
        return f"arch={self.arch}, width={self.width}, layers={self.layers}, module={self.study_module!r}"


def build_study_resnet(arch: str, num_classes: int, pretrained: bool | str = False, module: str = "none",
                       width: int = 64, drop_rate: float = 0.0, layers: Sequence[int] | None = None,
                       **module_kw) -> StudyResNet:
    """Build ``StudyResNet(arch)`` (weights loaded first), then let the study module ``module`` edit it in place."""
    apply = get_study_module(module)  # an unknown name fails before anything is built
    net = StudyResNet(arch, num_classes, pretrained, width, layers, drop_rate)
    before = {n for n, _ in net.named_parameters()}
    apply(net, **module_kw)
    net.study_module, net.study_module_kw = module, dict(module_kw)
    new = tuple(n for n, _ in net.named_parameters() if n not in before and not n.startswith("fc."))
    net.new_param_prefixes = ("fc.", *new)
    return net


@register_model("study_resnet18", paper="study")
def study_resnet18(num_classes: int, pretrained: bool | str = False, module: str = "none", width: int = 64,
                   drop_rate: float = 0.0, layers: Sequence[int] | None = None, **module_kw) -> StudyResNet:
    """ResNet-18 (torchvision's names) + one registered study ``module`` (list_study_modules()); kw: its options."""
    return build_study_resnet("resnet18", num_classes, pretrained, module, width, drop_rate, layers, **module_kw)


@register_model("study_resnet50", paper="study")
def study_resnet50(num_classes: int, pretrained: bool | str = False, module: str = "none", width: int = 64,
                   drop_rate: float = 0.0, layers: Sequence[int] | None = None, **module_kw) -> StudyResNet:
    """ResNet-50 (torchvision's names) + one registered study ``module`` (list_study_modules()); kw: its options."""
    return build_study_resnet("resnet50", num_classes, pretrained, module, width, drop_rate, layers, **module_kw)
