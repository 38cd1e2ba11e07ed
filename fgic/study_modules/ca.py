"""CA: SE channel attention in every residual unit, before the residual addition (paper 001, CA-ResNet50).

Du & Ma, "Multi-Attention Mechanism Fusion for Fine-Grained Image Classification", section 2.1 and Table 1; the
block is the SE channel attention ``fgic.nn.attention_se.SEChannelAttention`` (s = sigmoid(W2 relu(W1 GAP(u))),
x~_c = s_c u_c, eq. (1) of the mixed-attention paper), built by paper 001's ``block_attention("ca")``.

Where: the ``attn`` slot of every residual unit, after the last conv + BN of the residual branch and before the
addition (the SE-ResNet placement; the paper says only "embedded in the residual structure unit"), on the
BasicBlock of ResNet-18 as on the Bottleneck of ResNet-50. Reduction 16, at least 4 hidden units (narrow widths).
"""

from __future__ import annotations

from fgic.models.multi_attention import block_attention
from fgic.models.study import STUDY_MODULES, StudyResNet, set_unit_attention


@STUDY_MODULES.register("ca", paper="001", where="every residual unit, on the residual branch before the addition")
def ca(net: StudyResNet, reduction: int = 16) -> None:
    """Paper 001's CA (SE channel attention) in every residual unit, before the addition."""
    set_unit_attention(net, block_attention("ca", reduction))
