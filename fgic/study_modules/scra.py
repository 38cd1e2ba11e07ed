"""SCRA after stage 1: a sigmoid gate from a 1x1 conv of the stage-1 map (paper 004).

Thushara, Ismithdeen, Abi, "Fine-Grained Image Classification with ConvNeXt and SCR-Attention", section 3.1.3
and Figure 1: A = sigmoid(conv1x1(X)), Y = A * X (the paper numbers no equation), one gate per channel and
position (``fgic.nn.scra.SCRA``; choices documented there).

Where: ``after["layer1"]``, between stage 1 and stage 2, as the paper places it in ConvNeXt-V2 (ResNet's layer1
plays the role of ConvNeXt's stage 1: the first stage, at stride 4). Choice: zero initialisation by default (the
gate starts at 0.5 everywhere, as ``fgic.models.convnextv2_scra``). In ConvNeXt a LayerNorm follows and undoes
the constant gate; here layer2's first unit reads the gated map through two convs that are each followed by a
BN (its residual branch and its projection shortcut), which undo it in training mode (batch statistics) but not
in eval mode with a pretrained trunk's running statistics. ``zero_init=False`` draws the conv from a truncated
normal (std 0.02).
"""

from __future__ import annotations

from fgic.models.study import STUDY_MODULES, StudyResNet
from fgic.nn.scra import SCRA


@STUDY_MODULES.register("scra", paper="004", where="after stage 1 (after layer1, before layer2)")
def scra(net: StudyResNet, zero_init: bool = True) -> None:
    """Paper 004's SCRA gate (sigmoid of a 1x1 conv, times the input) between stage 1 and stage 2."""
    net.after["layer1"] = SCRA(net.stage_channels[0], zero_init=zero_init)  # (B, C1, H/4, W/4) -> same
