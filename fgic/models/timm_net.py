"""Any timm classification network behind the fgic model protocol.

``TimmNet("convnext_atto", num_classes)`` keeps timm's ``forward_features`` (B, C, h, w) and its head
up to the pre-logits (pool, norm, flatten), and owns the dropout and linear classifier so every model
exposes the same ``classify`` step. ``pretrained=True`` asks timm for its default weights (the Hugging
Face cache, or a download when online); a string is a local weights file.
"""

from __future__ import annotations

import timm
import torch
import torch.nn as nn

from fgic.models.pretrained import PretrainedWeightsError, load_into, load_state_dict_file
from fgic.models.registry import register_model


class TimmNet(nn.Module):
    def __init__(self, arch: str, num_classes: int, pretrained: bool | str = False, drop_rate: float = 0.0, **kw):
        super().__init__()
        if pretrained is True:
            try:
                body = timm.create_model(arch, pretrained=True, num_classes=0, **kw)
            except Exception as e:
                raise PretrainedWeightsError(
                    f"timm could not load pretrained weights for {arch!r} ({type(e).__name__}: {e}). "
                    "Put them in the Hugging Face cache (HF_HOME) on a machine with internet access, or pass "
                    "pretrained='path/to/file.safetensors|pth'; fgic never falls back to random weights."
                ) from e
        else:
            body = timm.create_model(arch, pretrained=False, num_classes=0, **kw)
            if isinstance(pretrained, str):
                load_into(body, load_state_dict_file(pretrained), skip_prefixes=("head.fc.", "fc.", "classifier."))
        self.arch = arch
        self.body = body
        self.num_classes = num_classes
        self.num_features = body.num_features  # D, after timm's pre-logits
        self.feature_channels = getattr(body, "feature_info", [{"num_chs": body.num_features}])[-1]["num_chs"]
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.forward_features(x)  # (B, C, h, w)

    def forward_head(self, fmap: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        z = self.body.forward_head(fmap, pre_logits=True)  # (B, D)
        return z if pre_logits else self.classify(z)

    def classify(self, emb: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(emb))  # (B, K)

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (B, K)


for _arch in ("convnext_atto", "convnext_tiny", "convnext_small"):

    def _factory(num_classes: int, pretrained: bool | str = False, _arch=_arch, **kw) -> TimmNet:
        return TimmNet(_arch, num_classes, pretrained, **kw)

    register_model(_arch, paper="baseline")(_factory)
