"""SA: CBAM spatial attention in every residual unit, before the residual addition (paper 001, SA-ResNet50).

Du & Ma, "Multi-Attention Mechanism Fusion for Fine-Grained Image Classification", section 2.1 and Table 1; the
paper names an SA but does not define it. Our reading (``fgic.nn.attention_spatial.CBAMSpatialAttention``,
CBAM's, Woo et al. 2018): x * sigmoid(conv7x7([mean_c x; max_c x])), 2 * 49 + 1 weights per unit.

Where: the ``attn`` slot of every residual unit, after the last conv + BN of the residual branch and before the
addition (as CA), built by paper 001's ``block_attention("sa")``.
"""

from __future__ import annotations

from fgic.models.multi_attention import block_attention
from fgic.models.study import STUDY_MODULES, StudyResNet, set_unit_attention


@STUDY_MODULES.register("sa", paper="001", where="every residual unit, on the residual branch before the addition")
def sa(net: StudyResNet) -> None:
    """Paper 001's SA (CBAM spatial attention) in every residual unit, before the addition."""
    set_unit_attention(net, block_attention("sa"))
