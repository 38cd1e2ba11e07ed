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
shift kernel) are ACmix's. Speed and memory: the attention runs as one masked scaled-dot-product
attention over blocks of 8 x 8 queries (4 x 4 at stride 2) and the key/value block that covers their
windows (14 x 14 at kernel_att 7), so the products also run over masked keys (about 4x the window's
multiply-adds) but in one fused kernel; keys and values are copied once into those blocks (about 3x).
The convolution path runs as one dense k x k conv of the input whose weight is composed from the
projections, the fc mix and the grouped shift conv (``conv_weight``): the same linear map, computed
without the kk*d-channel intermediate (``convolution`` keeps the paper's step-by-step form).
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

    #: query tile side (output positions, see ``attention``) at stride 1; halved at stride 2 so the halo
    #: block stays small (8 and 4 measured fastest on CPU for ACANet at 224 px)
    tile = 8

    def _window_bias(self, device: torch.device, kh: int, kw: int) -> torch.Tensor:
        """Relative-position bias of every (query in a tile, key in its halo) pair; ``-inf`` off the window.

        Returns (N, T*T, kh*kw): the query at tile cell (a, b) sees the halo key (u, w) through the
        window offset (dy, dx) = (u - s*a - r, w - s*b - r) when |dy|, |dx| <= r.
        """
        s, ka = self.stride, self.kernel_att
        t = max(1, self.tile // s)
        r = ka // 2
        a = torch.arange(t, device=device)
        dy = torch.arange(kh, device=device).view(1, -1) - s * a.view(-1, 1) - r  # (T, kh)
        dx = torch.arange(kw, device=device).view(1, -1) - s * a.view(-1, 1) - r  # (T, kw)
        dy, dx = dy.view(t, 1, kh, 1), dx.view(1, t, 1, kw)
        inside = (dy.abs() <= r) & (dx.abs() <= r)  # (T, T, kh, kw)
        idx = ((dy + r) * ka + dx + r).clamp(0, ka * ka - 1)  # (T, T, kh, kw), window offset, row-major
        bias = self.rel_pos[:, idx]  # (N, T, T, kh, kw): eq. (9)'s position term
        bias = bias.masked_fill(~inside, float("-inf"))
        return bias.reshape(self.num_heads, t * t, kh * kw)

    def _attn_mask(self, H: int, W: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Additive mask of ``attention`` for an H x W input: position bias, -1e30 off the window or image.

        Without autograd (inference) it is cached per input size and ``rel_pos`` version.
        """
        tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()  # export / compile: fake tensors, no cache
        cache = self.__dict__.setdefault("_mask_cache", {})
        grad = tracing or (torch.is_grad_enabled() and self.rel_pos.requires_grad)
        key = None if grad else (H, W, self.tile, dtype, device, self.rel_pos._version, self.rel_pos.data_ptr())
        if not grad and key in cache:
            return cache[key]
        s, r, n = self.stride, self.kernel_att // 2, self.num_heads
        t = max(1, self.tile // s)
        ho, wo = -(-H // s), -(-W // s)
        ty, tx = -(-ho // t), -(-wo // t)
        kh = kw = s * (t - 1) + 2 * r + 1
        ones = F.pad(
            torch.ones(1, 1, H, W, device=device), (r, s * t * (tx - 1) + kw - W - r, r, s * t * (ty - 1) + kh - H - r)
        )
        outside = ones.unfold(2, kh, s * t).unfold(3, kw, s * t).reshape(ty, tx, 1, kh * kw) == 0  # padding, not image
        bias = self._window_bias(device, kh, kw).view(n, 1, 1, t * t, kh * kw)
        # -inf off the window or outside the image, made finite: a padded query beyond (Ho, Wo) may see no
        # key at all, and a finite row keeps its (cropped) softmax and gradients free of NaN
        bias = bias.masked_fill(outside, float("-inf")).clamp(min=-1e30)
        bias = bias.reshape(1, n * ty * tx, t * t, kh * kw).to(dtype)
        if not grad:
            cache.clear()
            cache[key] = bias
        return bias

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Local-window multi-head self-attention, eqs. (9) and (11); (B, C, H, W) x3 -> (B, C, Ho, Wo)."""
        return self._attend(q, torch.cat([k, v], dim=1))

    def _attend(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """``attention`` with keys and values stacked along channels, kv: (B, 2C, H, W).

        Vectorised as blocked ("halo") attention: the output map is cut into ``tile`` x ``tile`` query
        tiles; every tile reads one (s*(T-1) + 2r + 1)^2 block of keys/values that covers all its windows
        (overlapping views of the zero-padded maps, one copy for k and v together), and one fused scaled
        dot-product attention takes all tiles, with the relative-position bias and a mask for keys outside
        a query's window or outside the image (``_attn_mask``). It computes exactly the windowed softmax
        (masked keys get weight 0); the products also run over the masked halo keys (about 4x the window's
        multiply-adds at T = 8, stride 1), which one fused kernel does far faster than 49 element-wise passes.
        """
        B, C, H, W = q.shape
        n, d, s = self.num_heads, self.head_dim, self.stride
        t = max(1, self.tile // s)  # query tile side
        r = self.kernel_att // 2
        q = q[:, :, ::s, ::s]  # queries at the output positions, (B, C, Ho, Wo)
        ho, wo = q.shape[-2:]
        ty, tx = -(-ho // t), -(-wo // t)  # tiles per column / row
        kh = kw = s * (t - 1) + 2 * r + 1  # halo block of one tile
        ph, pw = s * t * (ty - 1) + kh, s * t * (tx - 1) + kw  # padded key map covering every halo
        kv = F.pad(kv, (r, pw - W - r, r, ph - H - r))  # (B, 2C, ph, pw), negative pads crop
        kv = kv.unfold(2, kh, s * t).unfold(3, kw, s * t)  # (B, 2C, ty, tx, kh, kw), a view
        kv = kv.reshape(B, 2, n, d, ty, tx, kh, kw).permute(1, 0, 2, 4, 5, 6, 7, 3)  # (2, B, N, ty, tx, kh, kw, d)
        kt, vt = kv.reshape(2, B, n * ty * tx, kh * kw, d)  # one copy: (B, N*ty*tx, kh*kw, d) each
        qt = F.pad(q, (0, tx * t - wo, 0, ty * t - ho)).reshape(B, n, d, ty, t, tx, t)
        qt = qt.permute(0, 1, 3, 5, 4, 6, 2).reshape(B, n * ty * tx, t * t, d)  # (B, N*ty*tx, T*T, d)
        bias = self._attn_mask(H, W, q.dtype, q.device)  # (1, N*ty*tx, T*T, kh*kw)
        # eqs. (9), (11): softmax(q.k / sqrt(d) + position) . v in one fused kernel; masked keys get weight 0
        out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=bias, scale=self.scale)  # (B, N*ty*tx, T*T, d)
        out = out.reshape(B, n, ty, tx, t, t, d).permute(0, 1, 6, 2, 4, 3, 5).reshape(B, C, ty * t, tx * t)
        return out[:, :, :ho, :wo]  # heads concatenated, eq. (11)

    def convolution(self, qkv: torch.Tensor) -> torch.Tensor:
        """Shift-and-aggregate convolution from the same projections, eqs. (6)-(8); -> (B, C, Ho, Wo).

        ``qkv``: (B, 3C, H, W), the q, k and v maps concatenated along channels (3N head slices of d).
        """
        B, _, H, W = qkv.shape
        n, d = self.num_heads, self.head_dim
        # eq. (6): one projected map per kernel position from the 3N head slices, computed directly in the
        # grouped conv's channel order (channel j of every head -> kk consecutive maps), (B, d, kk, HW)
        f = torch.matmul(self.fc.weight[:, :, 0, 0], qkv.view(B, 3 * n, d, H * W).transpose(1, 2))
        return self.dep_conv(f.reshape(B, -1, H, W))  # eqs. (7), (8): shift by the kernel offset and sum

    def conv_weight(self) -> torch.Tensor:
        """The convolution path as one k x k conv of the input, (C, Cin, k, k); it equals ``convolution``.

        Projections (eq. (10)), the fully connected mix (eq. (6)) and the grouped shift conv (eqs. (7),
        (8)) are all linear and bias-free, so they compose: map j*kk + i of the mix is
        P[j, i] = sum_c fc[i, c] W_qkv[c*d + j] (a (Cin,) vector), and output channel o (group g = o // N
        of the grouped conv) is sum_i W_dep[o, i] * shift(P[g, i] . x), a k x k conv with weight
        W[o, :, a, b] = sum_i W_dep[o, i, a, b] P[g(o), i]. One dense conv runs far faster than the
        kk*d-channel intermediate and the grouped conv it replaces (same result; gradients flow through W).
        """
        n, d, cin = self.num_heads, self.head_dim, self.in_chs
        w_qkv = torch.cat([self.q.weight, self.k.weight, self.v.weight]).view(3 * n, d, cin)  # (3N, d, Cin)
        fc = self.fc.weight[:, :, 0, 0]  # (kk, 3N)
        p = torch.einsum("ic,cjn->jin", fc, w_qkv)  # (d, kk, Cin)
        p = p.repeat_interleave(self.out_chs // d, dim=0)  # (C, kk, Cin): row o holds P[o // N]
        return torch.einsum("oiab,oin->onab", self.dep_conv.weight, p)  # (C, Cin, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) -> (B, Cout, ceil(H/s), ceil(W/s))
        w = torch.cat([self.q.weight, self.k.weight, self.v.weight])  # stage I, eq. (10): one 1x1 conv
        qkv = F.conv2d(x, w)  # (B, 3C, H, W)
        q, kv = qkv[:, : self.out_chs], qkv[:, self.out_chs :]  # (B, C, H, W), (B, 2C, H, W)
        conv = F.conv2d(x, self.conv_weight(), stride=self.stride, padding=self.kernel_conv // 2)  # eqs. (6)-(8)
        return torch.addcmul(self.beta * conv, self.alpha, self._attend(q, kv))

    def extra_repr(self) -> str:
        return (
            f"{self.in_chs}, {self.out_chs}, stride={self.stride}, heads={self.num_heads}, "
            f"kernel_att={self.kernel_att}, kernel_conv={self.kernel_conv}"
        )
