"""L2-SP: an L2 penalty towards the starting point (the pretrained weights) instead of towards zero.

Method: Li, Grandvalet, Davoine, "Explicit Inductive Bias for Transfer Learning with Convolutional
Networks" (ICML 2018). Used by Thushara et al., "Fine-Grained Image Classification with ConvNeXt and
SCR-Attention", section 3.1.2 (the paper's reference [4] points at "Learning without Forgetting" by
Li and Hoiem, a different method; the equation it writes is L2-SP's).

    R(w) = lam * sum_i ||w_i - w0_i||^2  +  beta * sum_j ||v_j||^2

over the anchored parameters w (those with a starting point w0) and the new parameters v (the new
classifier, SCRA). ``reg = L2SP(model)``; ``reg(model)`` returns the scalar, whose gradient w.r.t. an
anchored weight is 2 lam (w - w0). The engine adds ``reg(model)`` to the loss each step.

Choices (the paper's eq. in section 3.1.2 is ``lambda * sum_{i=1..n} (w_i - w_i,pretrained)^2`` with
lambda = 0.01 (section 3.3), n = "the number of weights in the model"):

- The seed paper's formula, literally: no 1/2 (the L2-SP paper writes alpha / 2; its alpha is 2 lam here),
  and ``lam`` defaults to the printed ``PAPER_LAMBDA`` = 0.01.
- The cross-entropy it is added to is fgic's batch mean (the paper's formula writes a sum over the m
  samples; PyTorch's and timm's losses average, which we take the authors' code to have done).
- New parameters have no pretrained value, so they cannot be in the seed paper's sum; it applies no
  separate term to them (its Adam weight decay of 1e-5 acts on all weights). ``beta`` (default 0) gives
  the L2-SP paper's ||v||^2 term when wanted.
- Which parameters are new: ``exclude`` prefixes, by default the model's ``new_param_prefixes``
  attribute (ConvNeXt-V2 + SCRA: ``("fc.", "scra.")``) or ``("fc.",)`` when it has none.
- Anchor: ``anchor=None`` copies the model's parameters when ``L2SP`` is built, i.e. the pretrained
  weights if they were loaded; with a randomly initialised model the anchor is its *initial* weights,
  which turns L2-SP into a pull towards the random start (notebooks must say so). ``anchor`` may also be
  a module or a state dict keyed by the model's parameter names.
- Only trainable parameters (``requires_grad``) are anchored; buffers are not regularised.
- Wrappers (DDP / Fabric ``.module``, ``torch.compile``'s ``._orig_mod``) are unwrapped by attribute,
  so ``reg(wrapped_model)`` sees the same parameter names as ``L2SP(model)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn

PAPER_LAMBDA = 0.01  # section 3.3 of the SCRA paper


def unwrap(model: nn.Module) -> nn.Module:
    """The innermost module behind DDP / Fabric (``.module``) and ``torch.compile`` (``._orig_mod``)."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module) or inner is model:
            return model
        model = inner


class L2SP:
    """``reg(model) = lam * sum ||w - w0||^2 + beta * sum ||v||^2`` (anchored w, new v): the SCRA paper's form."""

    def __init__(
        self,
        model: nn.Module,
        lam: float = PAPER_LAMBDA,
        anchor: nn.Module | Mapping[str, torch.Tensor] | None = None,
        exclude: Sequence[str] | None = None,
        beta: float = 0.0,
    ):
        model = unwrap(model)
        if exclude is None:
            exclude = getattr(model, "new_param_prefixes", ("fc.",))
        self.lam, self.beta, self.exclude = float(lam), float(beta), tuple(exclude)
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if anchor is None:
            source: Mapping[str, torch.Tensor] = params
        elif isinstance(anchor, nn.Module):
            source = dict(unwrap(anchor).named_parameters())
        else:
            source = anchor
        self.anchor: dict[str, torch.Tensor] = {}
        for n, p in params.items():
            if n.startswith(self.exclude) or n not in source:
                continue
            w0 = source[n]
            if w0.shape != p.shape:
                raise ValueError(f"L2SP anchor {n!r} has shape {tuple(w0.shape)}, parameter has {tuple(p.shape)}")
            self.anchor[n] = w0.detach().clone().to(p.device)
        if not self.anchor:
            raise ValueError("L2SP: no parameter has an anchor (check the anchor's names and `exclude`)")
        self.new_names = [n for n in params if n not in self.anchor]  # get the beta term

    @property
    def anchored_names(self) -> list[str]:
        return list(self.anchor)

    def __call__(self, model: nn.Module) -> torch.Tensor:
        params = dict(unwrap(model).named_parameters())
        total = None
        for n, w0 in self.anchor.items():
            p = params[n]
            if w0.device != p.device:  # the model moved after the anchor was taken
                w0 = self.anchor[n] = w0.to(p.device)
            term = (p - w0).pow(2).sum()  # ||w - w0||^2
            total = term if total is None else total + term
        reg = self.lam * total  # lambda * sum (w_i - w_i,pretrained)^2, section 3.1.2 of the SCRA paper
        if self.beta:
            reg = reg + self.beta * sum(params[n].pow(2).sum() for n in self.new_names)
        return reg

    def __repr__(self) -> str:
        return (
            f"L2SP(lam={self.lam}, beta={self.beta}, anchored={len(self.anchor)} tensors, "
            f"new={len(self.new_names)} tensors, exclude={self.exclude})"
        )
