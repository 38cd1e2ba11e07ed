"""ConvNeXt-V2 baselines and ConvNeXt-V2 + SCRA, with dropout before the classifier.

Paper: Thushara, Ismithdeen, Abi, "Fine-Grained Image Classification with ConvNeXt and SCR-Attention".
The paper fine-tunes timm's ImageNet-22k ConvNeXt-V2 Large with a new linear classifier, adds a dropout
layer (p = 0.45) "right before the final softmax layer", and inserts one SCRA block (``fgic.nn.scra``)
between stage 1 and stage 2 (Figure 1).

Registered names (all timm ConvNeXt-V2 sizes the paper's profile or a CPU profile needs):
``convnextv2_{atto,femto,nano,tiny,large}`` (baseline) and the same with ``_scra``. Factories take
``drop_rate`` (default 0.0, the paper's baseline; pass ``PAPER_DROP_RATE`` = 0.45 for its dropout rows)
and ``pretrained`` (True: timm's weights from the local cache, a path: a weights file; missing weights
raise ``PretrainedWeightsError``, see ``TimmNet``). ``pretrained_tag`` picks another timm weight set;
the default for Large is ``fcmae_ft_in22k_in1k`` (FCMAE, ImageNet-22k then 1k fine-tuning, the closest to
the paper's "pre-trained on ImageNet 22k"); atto / femto have only ImageNet-1k weights.

Choices and departures:

- "Stage 1" is the first of ConvNeXt's four stages, timm's ``body.stages[0]`` (192 channels at stride 4
  for Large). SCRA runs on its output, before stage 2's downsampling (LayerNorm + 2x2 conv).
- The dropout sits between timm's pre-logits (pool + LayerNorm) and the linear classifier: dropout on
  the logits themselves ("before the softmax") would be unusual and the linear layer is the last
  learned layer, so we read the phrase as "before the classifier".
- SCRA is a module of its own (``model.scra``) outside timm's ``body``, so a plain ConvNeXt-V2 weights
  file loads into ``body`` unchanged; ``new_param_prefixes`` names the parameters a pretrained file
  never holds (the classifier and SCRA), which ``fgic.regularizers.L2SP`` leaves out of its anchor.
"""

from __future__ import annotations

import torch

from fgic.models.registry import register_model
from fgic.models.timm_net import TimmNet
from fgic.nn.scra import SCRA

PAPER_DROP_RATE = 0.45  # section 3.3: dropout probability before the classifier
SIZES = ("atto", "femto", "nano", "tiny", "large")


class ConvNeXtV2(TimmNet):
    """timm ConvNeXt-V2 behind the fgic protocol, optionally with SCRA after stage ``scra_after``.

    ``scra_after`` is 0-based over timm's stages: 0 = after the paper's stage 1. ``scra=False`` gives
    the baseline (the same forward as timm's ``forward_features``).
    """

    def __init__(
        self,
        arch: str,
        num_classes: int,
        pretrained: bool | str = False,
        drop_rate: float = 0.0,
        scra: bool = False,
        scra_after: int = 0,
        scra_zero_init: bool = True,
        pretrained_tag: str | None = None,
        **kw,
    ):
        super().__init__(arch, num_classes, pretrained, drop_rate, pretrained_tag=pretrained_tag, **kw)
        self.scra_after = scra_after
        channels = self.body.feature_info[scra_after]["num_chs"]  # C_s of the stage SCRA follows
        self.scra = SCRA(channels, zero_init=scra_zero_init) if scra else None
        self.new_param_prefixes = ("fc.", "scra.") if scra else ("fc.",)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b = self.body
        x = b.stem(x)  # (B, C0, H/4, W/4)
        for i, stage in enumerate(b.stages):
            x = stage(x)  # (B, C_i, H/2^(i+2), W/2^(i+2))
            if self.scra is not None and i == self.scra_after:
                x = self.scra(x)  # Figure 1: SCRA between stage 1 and stage 2, same shape
        return b.norm_pre(x)  # (B, C, H/32, W/32)

    @property
    def last_map(self) -> torch.Tensor | None:
        """The latest SCRA attention map (B, C_s, h_s, w_s), detached; None without SCRA or a forward."""
        return None if self.scra is None else self.scra.last_map


def _register(size: str, with_scra: bool) -> None:
    arch = f"convnextv2_{size}"
    name = f"{arch}_scra" if with_scra else arch

    def factory(num_classes: int, pretrained: bool | str = False, drop_rate: float = 0.0, **kw) -> ConvNeXtV2:
        return ConvNeXtV2(arch, num_classes, pretrained, drop_rate=drop_rate, scra=with_scra, **kw)

    factory.__name__ = name
    what = "with one SCRA block after stage 1" if with_scra else "baseline"
    desc = f"timm ConvNeXt-V2 {size.capitalize()} {what}, dropout + linear head"
    register_model(name, paper="004", description=desc)(factory)


for _size in SIZES:
    _register(_size, with_scra=False)
    _register(_size, with_scra=True)
