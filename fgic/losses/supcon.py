"""Supervised contrastive loss: P. Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020.

For L2-normalised features z (N, D) and labels (N,), each anchor i averages over its positives
P(i) (same label, i excluded) the log-probability of picking p among A(i) (all samples but i):

    L = mean_{i: P(i) nonempty} -1/|P(i)| sum_{p in P(i)}
            log[exp(z_i.z_p/tau) / sum_{a in A(i)} exp(z_i.z_a/tau)]

This is Khosla's L_out and eq. (11) of the GHOLM-Net paper, with two choices:
- eq. (11) sums over the anchors I; we average (``reduction="mean"``, as Khosla's reference code and
  ``pytorch_metric_learning.losses.SupConLoss`` do) so the weight against cross-entropy does not grow
  with the batch size; ``reduction="sum"`` gives the literal eq. (11).
- the GHOLM text defines A(i) as the *negatives* of i; Khosla's A(i) is every other sample. Default
  ``denominator="all"`` (Khosla, whom the paper cites); ``"negatives"`` follows the GHOLM wording.
Anchors without a positive in the batch are left out (they have no term); with none at all the loss is 0.
Multi-view batches (GHOLM's raw + crop views) are passed stacked: ``z = cat(views)``,
``labels = cat(labels)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fgic.losses.base import FGICLoss
from fgic.losses.registry import register_loss
from fgic.models.base import ModelOutput


def sup_con_loss(
    z: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    denominator: str = "all",
    reduction: str = "mean",
) -> torch.Tensor:
    """Supervised contrastive loss of features z (N, D) with labels (N,); see the module docstring."""
    if denominator not in ("all", "negatives") or reduction not in ("mean", "sum"):
        raise ValueError(f"bad denominator={denominator!r} or reduction={reduction!r}")
    z = F.normalize(z.float(), dim=1)  # (N, D)
    sim = z @ z.T / temperature  # (N, N): z_i . z_a / tau
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    same = labels[:, None] == labels[None, :]  # (N, N)
    pos = same & ~eye  # P(i)
    keep = ~eye if denominator == "all" else ~same  # A(i)
    # a large finite fill (not -inf) keeps gradients finite for rows with an empty A(i)
    log_den = torch.logsumexp(sim.masked_fill(~keep, -1e9), dim=1, keepdim=True)  # (N, 1)
    log_prob = sim - log_den  # (N, N)
    n_pos = pos.sum(1)  # (N,)
    valid = (n_pos > 0) & keep.any(1)  # anchors with a term in eq. (11)
    if not valid.any():
        return z.sum() * 0.0
    per_anchor = -torch.where(pos, log_prob, 0.0).sum(1)[valid] / n_pos[valid]  # eq. (11), inner sum
    return per_anchor.mean() if reduction == "mean" else per_anchor.sum()


@register_loss("supcon", paper="003")
class SupConLoss(FGICLoss):
    """SupCon on the pooled embedding, plus ``ce_weight`` x cross-entropy on the logits.

    With the default ``ce_weight=0`` only the embedding is trained (the classifier stays untrained);
    set ``ce_weight=1`` to train both, as GHOLM-Net does (it applies SupCon to raw + crop views itself).
    """

    needs = ("embedding", "logits")

    def __init__(
        self,
        num_classes: int,
        feat_dim: int | None = None,
        temperature: float = 0.1,
        ce_weight: float = 0.0,
        denominator: str = "all",
    ):
        super().__init__()
        self.temperature, self.ce_weight, self.denominator = temperature, ce_weight, denominator

    def forward(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        loss = sup_con_loss(out.embedding, target, self.temperature, self.denominator)
        if self.ce_weight:
            loss = loss + self.ce_weight * F.cross_entropy(out.logits, target)
        return loss
