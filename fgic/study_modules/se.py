"""CA on top: one SE channel attention on the last stage's output (paper 002, "CA" row of Tables I-II).

Li et al., "Mixed Attention Mechanism for Small-Sample Fine-grained Image Classification", section II-A, eq. (1):
s = sigmoid(W2 relu(W1 GAP(U))), x~_c = s_c u_c (``fgic.nn.attention_se.SEChannelAttention``, built by paper
002's ``head_attention("ca")``).

Where: ``after["layer4"]``, on the output of the whole convolutional trunk, before global pooling (the paper adds
it "in the last layer of modified basic models"; ``fgic.models.mixed_attention`` reads it the same way). One block
for the whole network, unlike paper 001's CA (``ca``: one per residual unit). The paper's FC(512)-BN-ELU head is
not used: every study network has the same GAP + linear head (``fgic.models.study``). Reduction 16.
"""

from __future__ import annotations

from fgic.models.mixed_attention import head_attention
from fgic.models.study import STUDY_MODULES, StudyResNet


@STUDY_MODULES.register("se", paper="002", where="on top of the last stage (after layer4), before pooling")
def se(net: StudyResNet, reduction: int = 16) -> None:
    """Paper 002's CA (one SE channel attention) on the last stage's output."""
    net.after["layer4"] = head_attention("ca", net.feature_channels, reduction)  # (B, C, h, w) -> same
