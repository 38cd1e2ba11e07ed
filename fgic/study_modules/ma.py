"""MA-Ours on top: CA and SA-Ours in parallel, concatenated and merged by a 1x1 conv (paper 002, "MA" row).

Li et al., "Mixed Attention Mechanism for Small-Sample Fine-grained Image Classification", section II-C, eq. (4)
and Fig. 1: X~_cs = F_cat(X~_c, X~_s) (B, 2C, H, W), X~ = F_merge(X~_cs) (B, C, H, W)
(``fgic.nn.attention_mixed.MixedAttention``, built by paper 002's ``head_attention("ma")``). F_merge is a 1x1 conv
with bias, initialised to the branch average ([I/2, I/2], ``merge_init="mean"``; ``"random"`` for PyTorch's
default), our choices where the paper says only "a convolution" (see there).

Where: ``after["layer4"]``, as ``se`` (one block on the trunk's output, before global pooling); GAP + linear
head as every study network. Reduction 16 in both branches.
"""

from __future__ import annotations

from fgic.models.mixed_attention import head_attention
from fgic.models.study import STUDY_MODULES, StudyResNet


@STUDY_MODULES.register("ma", paper="002", where="on top of the last stage (after layer4), before pooling")
def ma(net: StudyResNet, reduction: int = 16, merge_init: str = "mean") -> None:
    """Paper 002's MA-Ours (CA and SA-Ours merged by a 1x1 conv) on the last stage's output."""
    net.after["layer4"] = head_attention("ma", net.feature_channels, reduction, merge_init)  # (B, C, h, w)
