"""The model protocol shared by every network, and a generic classifier around any feature extractor.

``ModelOutput`` bundles what a loss may need: the last feature map (MC-loss, CAM), the pooled embedding
(centre / margin losses) and the logits. ``model_outputs`` computes all three in one forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class ModelOutput:
    feature_map: torch.Tensor  # (B, C, h, w)
    embedding: torch.Tensor  # (B, D)
    logits: torch.Tensor  # (B, K)


def model_outputs(model: nn.Module, x: torch.Tensor) -> ModelOutput:
    """One forward pass through ``forward_features`` and ``forward_head`` keeping every stage."""
    fmap = model.forward_features(x)  # (B, C, h, w)
    emb = model.forward_head(fmap, pre_logits=True)  # (B, D)
    logits = model.classify(emb)  # (B, K)
    return ModelOutput(fmap, emb, logits)


def predict_logits(model: nn.Module, criterion: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """Class scores (B, K) of a trained run: ``model.predict_logits`` where defined (GHOLM-Net), else the
    loss's head (margin losses keep their classifier there), else the model's own logits."""
    if hasattr(model, "predict_logits"):
        return model.predict_logits(x)  # (B, K)
    out = model_outputs(model, x)
    return out.logits if criterion is None else criterion.logits(out)  # (B, K)



@torch.no_grad()
def torchvision_init(module: nn.Module) -> nn.Module:
    """torchvision's ResNet initialisation, in place: Kaiming-normal (fan out) convs, BN weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


class ClassifierNet(nn.Module):
    """features -> global average pool -> optional pre-logits block -> dropout -> linear classifier.

    ``features`` maps (B, 3, H, W) to (B, C, h, w). ``pre_logits`` (optional) maps (B, C) to (B, D);
    without it D = C. Subclasses or wrappers only need to provide ``features``.
    """

    def __init__(
        self,
        features: nn.Module,
        feature_channels: int,
        num_classes: int,
        pre_logits: nn.Module | None = None,
        num_features: int | None = None,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        self.features = features
        self.init_head(feature_channels, num_classes, pre_logits, num_features, drop_rate)

    def init_head(
        self,
        feature_channels: int,
        num_classes: int,
        pre_logits: nn.Module | None = None,
        num_features: int | None = None,
        drop_rate: float = 0.0,
    ) -> None:
        """Create the head (pool, pre-logits, dropout, ``fc``): ``__init__``'s second half, for a subclass that
        keeps its trunk's modules at the top level instead of under ``features`` (``fgic.models.study``)."""
        self.feature_channels = feature_channels
        self.num_features = num_features or feature_channels
        self.num_classes = num_classes
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.pre_logits = pre_logits or nn.Identity()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, C, h, w)

    def forward_head(self, fmap: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        z = self.pre_logits(self.pool(fmap).flatten(1))  # (B, D)
        return z if pre_logits else self.classify(z)

    def classify(self, emb: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(emb))  # (B, K)

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (B, K)
