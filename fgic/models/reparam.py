"""Fuse training-time branches for deployment (structural re-parameterisation).

Any sub-module that defines ``reparameterize()`` (for example the ACCB block of ``fgic.nn.acb``) is
asked to fuse itself in place; the model is switched to eval mode first, since fusing folds the
BatchNorm running statistics.
"""

from __future__ import annotations

import torch
import torch.nn as nn


@torch.no_grad()
def reparameterize(model: nn.Module) -> nn.Module:
    """Fuse every re-parameterisable block of ``model`` in place and return it (in eval mode).

    Returns the number of fused blocks as ``model.num_reparameterized`` for the caller to check.
    """
    model.eval()
    fused = 0
    for m in list(model.modules()):
        if m is not model and hasattr(m, "reparameterize") and not getattr(m, "deployed", False):
            m.reparameterize()
            fused += 1
    model.num_reparameterized = fused
    return model
