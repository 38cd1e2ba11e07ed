"""CSCA: channel then spatial attention in every residual unit, before the addition (paper 001, CSCA-ResNet50).

Du & Ma, "Multi-Attention Mechanism Fusion for Fine-Grained Image Classification", section 2.1 and Table 1 (its
best network); the paper gives no definition. Our reading (``fgic.nn.attention_csca.ChannelSpatialAttention``):
CBAM's order, x' = x * M_c(x) with the CA above (SE), then y = x' * M_s(x') with the SA above (CBAM spatial), so
ca / sa / csca form an ablation ladder.

Where: the ``attn`` slot of every residual unit, after the last conv + BN of the residual branch and before the
addition, built by paper 001's ``block_attention("csca")``. Reduction 16, 7x7 spatial kernel.
"""

from __future__ import annotations

from fgic.models.multi_attention import block_attention
from fgic.models.study import STUDY_MODULES, StudyResNet, set_unit_attention


@STUDY_MODULES.register("csca", paper="001", where="every residual unit, on the residual branch before the addition")
def csca(net: StudyResNet, reduction: int = 16) -> None:
    """Paper 001's CSCA (SE channel, then CBAM spatial attention) in every residual unit, before the addition."""
    set_unit_attention(net, block_attention("csca", reduction))
