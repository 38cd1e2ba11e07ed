"""A-softmax loss (Liu et al., "SphereFace: Deep Hypersphere Embedding for Face Recognition", CVPR 2017),
the "A-softmax Loss" of the ACANet paper's Table 2.

The loss owns the classifier: weights W (K, D) normalised to unit length, no bias, so the logit of class
j is ||x|| cos(theta_j). For the target class the angle is multiplied by m (= 4) through
psi(theta) = (-1)^k cos(m theta) - 2k, theta in [k pi/m, (k+1) pi/m], which keeps psi monotonic on
[0, pi]; cos(m theta) is the Chebyshev polynomial T_m(cos theta).

Lambda annealing (SphereFace's released Caffe setting): the target logit is
(lam * ||x|| cos theta_y + ||x|| psi(theta_y)) / (1 + lam) with
lam = max(lambda_min, base * (1 + gamma * it)^(-power)), base = 1000, gamma = 0.12, power = 1,
lambda_min = 5. It is *iteration* based: ``it`` (the ``iteration`` buffer, saved in the state dict)
counts training forward passes, i.e. passes with the loss in training mode and autograd on; evaluation
under ``torch.no_grad()`` does not advance it. ``step_epoch`` is not used. With these values lam reaches
its floor after about 1,650 iterations. ``logits(out)`` gives the margin-free ||x|| cos theta.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from fgic.losses.base import FGICLoss
from fgic.losses.registry import register_loss
from fgic.models.base import ModelOutput


def chebyshev(c: torch.Tensor, m: int) -> torch.Tensor:
    """T_m(c) = cos(m * acos(c)) by the recurrence T_{n+1} = 2 c T_n - T_{n-1}."""
    t_prev, t = torch.ones_like(c), c
    if m == 0:
        return t_prev
    for _ in range(m - 1):
        t_prev, t = t, 2 * c * t - t_prev
    return t


def sphereface_psi(cos: torch.Tensor, m: int) -> torch.Tensor:
    """psi(theta) = (-1)^k cos(m theta) - 2k with k = floor(m theta / pi)."""
    with torch.no_grad():
        theta = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
        k = torch.floor(m * theta / math.pi)
    return (1 - 2 * (k % 2)) * chebyshev(cos, m) - 2 * k


@register_loss("asoftmax", paper="000")
class ASoftmaxLoss(FGICLoss):
    """A-softmax (SphereFace, Liu et al. 2017): angular margin m=4 on a normalised classifier, lambda annealed."""

    param_weight_decay = None  # the model's decay: SphereFace trains its classifier weights with the net's 5e-4
    needs = ("embedding",)

    def __init__(
        self,
        num_classes: int,
        feat_dim: int | None = None,
        m: int = 4,
        base: float = 1000.0,
        gamma: float = 0.12,
        power: float = 1.0,
        lambda_min: float = 5.0,
    ):
        super().__init__()
        if feat_dim is None:
            raise ValueError("ASoftmaxLoss needs feat_dim (the embedding size D)")
        self.m, self.base, self.gamma, self.power, self.lambda_min = int(m), base, gamma, power, lambda_min
        self.weight = nn.Parameter(torch.empty(num_classes, feat_dim))  # (K, D)
        nn.init.xavier_uniform_(self.weight)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    @property
    def lam(self) -> float:
        """The current annealing weight lambda."""
        it = int(self.iteration)
        return max(self.lambda_min, self.base * (1.0 + self.gamma * it) ** (-self.power))

    def cos_theta(self, emb: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(emb, dim=1), F.normalize(self.weight, dim=1)).clamp(-1, 1)  # (B, K)

    def margin_logits(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cos = self.cos_theta(emb)  # (B, K)
        cos_y = cos.gather(1, target[:, None])  # (B, 1)
        lam = self.lam
        f_y = (lam * cos_y + sphereface_psi(cos_y, self.m)) / (1.0 + lam)
        return emb.norm(dim=1, keepdim=True) * cos.scatter(1, target[:, None], f_y)  # (B, K)

    def forward(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(self.margin_logits(out.embedding, target), target)
        if self.training and torch.is_grad_enabled():
            self.iteration += 1
        return loss

    def logits(self, out: ModelOutput) -> torch.Tensor:
        return out.embedding.norm(dim=1, keepdim=True) * self.cos_theta(out.embedding)  # ||x|| cos theta

    def extra_repr(self) -> str:
        return f"m={self.m}, lam={self.lam:.3g}, iteration={int(self.iteration)}"
