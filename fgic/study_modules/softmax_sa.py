"""SA-Ours on top: the softmax spatial attention of paper 002 on the last stage's output ("SA" row).

Li et al., "Mixed Attention Mechanism for Small-Sample Fine-grained Image Classification", section II-B, eqs.
(2)-(3): SE channel weights normalised by a softmax over channels (s sums to one), V = sum_c s_c u_c (B, 1, H, W),
x~_s = u_{s,c} * v_s (``fgic.nn.attention_spatial.SESpatialAttention``, built by paper 002's
``head_attention("sa")``).

Where: ``after["layer4"]``, as ``se`` (one block on the trunk's output, before global pooling); GAP + linear
head as every study network. Reduction 16.
"""

from __future__ import annotations

from fgic.models.mixed_attention import head_attention
from fgic.models.study import STUDY_MODULES, StudyResNet


@STUDY_MODULES.register("softmax_sa", paper="002", where="on top of the last stage (after layer4), before pooling")
def softmax_sa(net: StudyResNet, reduction: int = 16) -> None:
    """Paper 002's SA-Ours (softmax-weighted channel sum as a spatial map) on the last stage's output."""
    net.after["layer4"] = head_attention("sa", net.feature_channels, reduction)  # (B, C, h, w) -> same
