"""The study's baseline: the plain torchvision ResNet, no module (every slot stays ``nn.Identity``)."""

from __future__ import annotations

from fgic.models.study import STUDY_MODULES, StudyResNet


@STUDY_MODULES.register("none", paper="baseline", where="nowhere: torchvision's ResNet as is")
def none(net: StudyResNet) -> None:
    """The plain ResNet (the study's baseline): torchvision's architecture and state dict."""
