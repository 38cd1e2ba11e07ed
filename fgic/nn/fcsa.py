"""FCSA: Fusion of Convolution and Self-Attention (section 3.2, eqs. (5)-(11) of the ACANet paper).

Tan & Xu, "ACANet: A Fine-grained Image Classification Optimization Method Based on Convolution and
Attention Fusion" (2023). The idea is ACmix (Pan et al., "On the Integration of Self-Attention and
Convolution", CVPR 2022): a k x k convolution and local multi-head self-attention both start with 1x1
projections (stage I, eqs. (6) and (10)), so one set of q, k, v projections can feed both

- an attention path: each output pixel attends over a ``kernel_att`` x ``kernel_att`` window of keys
  around it, with a learnable relative-position bias per head and window offset (eqs. (9), (11));
- a convolution path: a fully connected layer over the 3N head slices of (q, k, v) produces k^2
  feature maps, which are shifted and summed (stage II, eqs. (7), (8)) by a grouped k x k conv whose
  weights start as exact shifts (so at initialisation it *is* shift-and-aggregate, then it learns);

and the two are mixed by two learnable scalars: ``alpha * attention + beta * conv`` (both start at 0.5).

Written from the paper's description (not from the ACmix code), and where it departs from ACmix:
- works at stride 1 and 2 and at any H, W (odd sizes included): stride is applied by reading queries at
  the strided positions and by the stride of the shift conv, so the output is ceil(H/s) x ceil(W/s),
  like a 3x3 conv with padding 1;
- keys/values outside the image are zero-padded and masked out of the softmax (ACmix reflects them);
- relative position encoding is a learned bias table (heads x window offsets), not ACmix's projected
  coordinate grid; no bias terms in the projections (a BN follows in the residual block).
The ACANet paper gives no head count or window size; the defaults (4 heads, 7x7 attention window, 3x3
shift kernel) are ACmix's. Memory: the attention weights are (B, heads, kernel_att^2, Ho, Wo), and on
small maps the keys and values are unfolded (kernel_att^2 copies); use a smaller ``kernel_att`` for big
maps.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class FCSA(nn.Module):
    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        num_heads: int = 4,
        kernel_att: int = 7,
        kernel_conv: int = 3,
    ):
        super().__init__()
        if out_chs % num_heads:
            raise ValueError(f"out_chs={out_chs} must be divisible by num_heads={num_heads}")
        if kernel_att % 2 != 1 or kernel_conv % 2 != 1:
            raise ValueError("kernel_att and kernel_conv must be odd")
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride
        self.num_heads, self.head_dim = num_heads, out_chs // num_heads
        self.kernel_att, self.kernel_conv = kernel_att, kernel_conv
        self.scale = self.head_dim**-0.5
        # stage I, eq. (10) of the ACANet paper: shared 1x1 projections
        self.q = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.k = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.v = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        # attention path: relative position bias per head and window offset
        self.rel_pos = nn.Parameter(torch.zeros(num_heads, kernel_att * kernel_att))
        # convolution path: fully connected over the 3N head slices -> k^2 maps, then shift-and-sum
        kk = kernel_conv * kernel_conv
        self.fc = nn.Conv2d(3 * num_heads, kk, 1, bias=False)
        self.dep_conv = nn.Conv2d(
            kk * self.head_dim,
            out_chs,
            kernel_conv,
            stride,
            kernel_conv // 2,
            groups=self.head_dim,
            bias=False,
        )
        self.alpha = nn.Parameter(torch.tensor(0.5))  # weight of the attention path
        self.beta = nn.Parameter(torch.tensor(0.5))  # weight of the convolution path
        self.reset_shift()

    @torch.no_grad()
    def reset_shift(self) -> None:
        """Initialise the grouped conv as pure shifts: input map i is moved by offset i and all are summed."""
        kc = self.kernel_conv
        w = torch.zeros_like(self.dep_conv.weight)  # (Cout, kc*kc, kc, kc)
        for i in range(kc * kc):
            w[:, i, i // kc, i % kc] = 1.0  # eq. (7) of the ACANet paper: Shift(Y', a - k/2, b - k/2)
        self.dep_conv.weight.copy_(w)

    #: output positions from which the offset loop beats one big ``F.unfold`` on CPU (measured: the loop
    #: wins on large stride-1 maps, unfold on small or strided ones); both compute the same thing
    loop_min_positions = 128

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Local-window multi-head self-attention, eqs. (9) and (11); (B, C, H, W) x3 -> (B, C, Ho, Wo).

        Offsets that can only fall outside the image (|dy| >= H or |dx| >= W) are skipped, which changes
        nothing in the result; keys outside the image are masked out of the softmax.
        """
        B, C, H, W = q.shape
        n, d, s, ka = self.num_heads, self.head_dim, self.stride, self.kernel_att
        r = ka // 2
        rh, rw = min(r, H - 1), min(r, W - 1)
        win = (2 * rh + 1, 2 * rw + 1)
        q = q[:, :, ::s, ::s] * self.scale  # queries at the output positions, (B, C, Ho, Wo)
        ho, wo = q.shape[-2:]
        q = q.reshape(B, n, d, ho, wo)
        offsets = [(dy, dx) for dy in range(-rh, rh + 1) for dx in range(-rw, rw + 1)]  # row-major, as unfold
        idx = torch.tensor([(dy + r) * ka + dx + r for dy, dx in offsets], device=q.device)
        inside = F.unfold(q.new_ones(1, 1, H, W), win, padding=(rh, rw), stride=s).view(1, 1, -1, ho, wo)
        loop = ho * wo >= self.loop_min_positions
        if loop:  # keys/values read as strided slices of the zero-padded maps, one offset at a time
            kp, vp = F.pad(k, (rw, rw, rh, rh)), F.pad(v, (rw, rw, rh, rh))

            def at(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:  # t at (s*i + dy, s*j + dx)
                t = t[
                    :, :, rh + dy : rh + dy + s * (ho - 1) + 1 : s, rw + dx : rw + dx + s * (wo - 1) + 1 : s
                ]
                return t.reshape(B, n, d, ho, wo)

            logits = torch.stack([(q * at(kp, dy, dx)).sum(2) for dy, dx in offsets], 2)
        else:  # one unfolded copy of the windows, (B, N, d, n_off, Ho, Wo)
            kw = F.unfold(k, win, padding=(rh, rw), stride=s).view(B, n, d, -1, ho, wo)
            vw = F.unfold(v, win, padding=(rh, rw), stride=s).view(B, n, d, -1, ho, wo)
            logits = (q.unsqueeze(3) * kw).sum(2)
        logits = logits + self.rel_pos[:, idx].view(1, n, -1, 1, 1)  # (B, N, n_off, Ho, Wo)
        attn = logits.masked_fill(inside == 0, float("-inf")).softmax(dim=2)  # A(q_ij, k_ab), eq. (9)
        if loop:
            out = sum(attn[:, :, i : i + 1] * at(vp, dy, dx) for i, (dy, dx) in enumerate(offsets))
        else:
            out = (attn.unsqueeze(2) * vw).sum(3)
        return out.reshape(B, C, ho, wo)  # heads concatenated, eq. (11)

    def convolution(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Shift-and-aggregate convolution from the same projections, eqs. (6)-(8); -> (B, C, Ho, Wo)."""
        B, C, H, W = q.shape
        n, d, kk = self.num_heads, self.head_dim, self.kernel_conv**2
        qkv = torch.cat([t.reshape(B, n, d, H * W) for t in (q, k, v)], dim=1)  # (B, 3N, d, HW)
        f = self.fc(qkv)  # (B, kk, d, HW): eq. (6), one projected map per kernel position
        f = f.transpose(1, 2).reshape(B, d * kk, H, W)  # groups of kk maps, one group per head channel
        return self.dep_conv(f)  # eqs. (7), (8): shift by the kernel offset and sum

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) -> (B, Cout, ceil(H/s), ceil(W/s))
        q, k, v = self.q(x), self.k(x), self.v(x)  # (B, C, H, W) each, stage I
        return self.alpha * self.attention(q, k, v) + self.beta * self.convolution(q, k, v)

    def extra_repr(self) -> str:
        return (
            f"{self.in_chs}, {self.out_chs}, stride={self.stride}, heads={self.num_heads}, "
            f"kernel_att={self.kernel_att}, kernel_conv={self.kernel_conv}"
        )
