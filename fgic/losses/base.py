"""One interface for every loss: ``loss(out, target)`` where ``out`` is a ``fgic.models.ModelOutput``.

A loss reads what it needs from ``out`` (logits, the pooled embedding, or the last feature map) and
may own learnable parameters (centres, margin-classifier weights); the engine optimises them with the
model. ``logits(out)`` gives the scores used for accuracy: the model's logits, or for margin losses
that replace the classifier, their own margin-free cosine logits.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fgic.models.base import ModelOutput


class FGICLoss(nn.Module):
    """Base class. Subclasses implement ``forward(out, target) -> scalar``."""

    #: which ModelOutput fields the loss reads, for documentation and checks
    needs: tuple[str, ...] = ("logits",)

    #: weight decay of the loss's own parameters (centres, margin-classifier weights): None = the model's
    #: ``TrainConfig.weight_decay``; each loss with parameters states its choice and why in its docstring.
    #: The engine applies it and runs record it as ``loss_weight_decay``.
    param_weight_decay: float | None = None

    def forward(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def logits(self, out: ModelOutput) -> torch.Tensor:
        """Scores for prediction / accuracy, (B, K)."""
        return out.logits

    def step_epoch(self, epoch: int) -> None:
        """Hook for schedules inside a loss (e.g. A-softmax's lambda annealing); default: nothing."""
