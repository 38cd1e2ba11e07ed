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
shift kernel) are ACmix's.

Speed and memory (``_attend``): the attention is blocked. Small maps (<= 256 positions) are one block:
every query against the whole map, read in place, with a mask for the window. Larger maps are cut into
blocks of queries (one output row over the width for narrow maps; 2 x 8, or 2 x 4 at stride 2, else)
whose keys (the rows and columns their windows cover: 8 x 14 for 2 x 8 and a 7 x 7 window, about 2.3x
the window's products) are strided views of one channels-last copy of keys/values cut into column
strips (1.6-1.75x the map). One fused scaled-dot-product attention (the CPU flash kernel) then takes all
heads and blocks of alike strips, with the relative-position bias and the window/image mask added.
The projections are one matmul that writes channels-last; alpha and beta are folded into the v
projection and the conv weight. The convolution path runs as one dense k x k conv of the input whose
weight is composed from the projections, the fc mix and the grouped shift conv (``conv_weight``): the
same linear map, computed without the kk*d-channel intermediate (``convolution`` keeps the paper's
step-by-step form). Inference (no autograd) caches masks and fused weights and works per batch chunk.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _count_cpu_flash_attention() -> None:
    """Give ``FlopCounterMode`` the FLOPs of the CPU flash-attention kernel, which FCSA's attention runs on.

    torch counts the CUDA SDPA kernels but has no formula for ``_scaled_dot_product_flash_attention_for_cpu``
    (it counts 0), so ``fgic.profile.complexity`` would miss the attention; the formula is torch's own SDPA
    count (the q.k and attn.v products, masked keys included). Registered once, only where torch has none.
    """
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    fwd = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    bwd = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if fwd is not None and fwd not in fc.flop_registry:
        fc.register_flop_formula(fwd)(lambda q, k, v, *a, out_shape=None, **kw: fc.sdpa_flop_count(q, k, v))
    if bwd is not None and bwd not in fc.flop_registry:
        fc.register_flop_formula(bwd)(
            lambda g, q, k, v, *a, out_shape=None, **kw: fc.sdpa_backward_flop_count(g, q, k, v)
        )


_count_cpu_flash_attention()


def _tracing() -> bool:
    """True under torch.compile / export / jit tracing (fake or symbolic tensors)."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _no_cache() -> bool:
    """True where inference caches must not be used: tracing, or a dispatch mode such as FlopCounterMode
    (whose count would then depend on what earlier calls cached) or fake tensors."""
    from torch.utils._python_dispatch import is_in_torch_dispatch_mode

    return _tracing() or is_in_torch_dispatch_mode()


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

    #: query block (rows, cols) of output positions; None picks one per map size (``_blocks``)
    tile: tuple[int, int] | None = None
    #: elements of projections and key/value blocks built per batch chunk (the batch is cut so that a
    #: chunk's buffers stay about this size: cache-sized buffers, not large fresh allocations each call)
    chunk_elems = 1 << 21

    def _blocks(self, H: int, W: int) -> tuple[int, int]:
        """Query block (rows, cols) of output positions for an H x W input (``tile`` overrides it).

        Chosen by measurement on CPU (ACANet at 224 and 112 px): the whole map when it has at most 256
        positions (its keys are the map itself: no copy, one block); else blocks of one output row over
        the whole width when that row's key rows are small (kernel_att x W <= 256, e.g. 28-wide maps);
        else 2 x 8 blocks at stride 1, 2 x 4 at stride 2 (8 x 14 and 9 x 13 keys for a 7 x 7 window, about
        2.3x the window's products, from column strips that cost one copy of 1.6-1.75x the keys).
        """
        s = self.stride
        ho, wo = -(-H // s), -(-W // s)
        if self.tile is not None:
            return self.tile
        if H * W <= 256:
            return ho, wo
        if self.kernel_att * W <= 256:
            return 1, wo
        return (2, 8) if s == 1 else (2, 4)

    def _chunks(self, B: int, per_image: int) -> list[slice]:
        """Batch slices of at most ``chunk_elems`` elements at ``per_image`` each (one image at least)."""
        bc = max(1, self.chunk_elems // max(1, per_image))
        if _tracing() or B <= bc:  # one chunk, batch size left symbolic for export
            return [slice(None)]
        return [slice(b0, b0 + bc) for b0 in range(0, B, bc)]

    def _layout(self, H: int, W: int) -> dict:
        """Geometry of ``_attend`` for an H x W input (see there); plain ints and lists."""
        s, r = self.stride, self.kernel_att // 2
        ho, wo = -(-H // s), -(-W // s)
        tr, tc = self._blocks(H, W)
        ty, tx = -(-ho // tr), -(-wo // tc)
        if ty == 1:  # one row of blocks: keys are all H rows, no padding
            top, kh = 0, H
        else:  # rows padded by r (zeros, masked) so that block i starts at padded row s*tr*i
            top, kh = r, s * (tr - 1) + 2 * r + 1
        rh = s * tr * ty  # rows per head in a strip (block i of head h starts at row h*rh + s*tr*i)
        g = self.num_heads * rh + max(kh - s * tr, top)  # rows of a strip: all heads, slack below
        kw = min(W, s * (tc - 1) + 2 * r + 1)
        c0 = [min(max(s * tc * j - r, 0), W - kw) for j in range(tx)]  # first key column of strip j (clamped)
        runs, j = [], 0  # consecutive strips whose window sits at the same place in the strip share a mask
        while j < tx:
            j1 = j + 1
            while j1 < tx and c0[j1] - s * tc * j1 == c0[j] - s * tc * j:
                j1 += 1
            runs.append((j, j1))
            j = j1
        view = tx == 1 and ty == 1 and kw == W  # keys of the one block: the map itself, no copy
        blocks = dict(ho=ho, wo=wo, tr=tr, tc=tc, ty=ty, tx=tx)
        return dict(blocks, top=top, kh=kh, rh=rh, g=g, kw=kw, c0=c0, runs=runs, view=view)

    def _masks(self, H: int, W: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Additive masks of ``_attend``: position bias inside a query's window, -1e30 elsewhere.

        Returns (runs, 1, N*ty, tr*tc, kh*kw): for the strips of each run a mask over (head, block row),
        the block's queries and its keys. Without autograd
        (inference) they are cached per input size and ``rel_pos`` version.
        """
        cache = self.__dict__.setdefault("_mask_cache", {})
        grad = _no_cache() or (torch.is_grad_enabled() and self.rel_pos.requires_grad)
        lay = self._layout(H, W)
        p = self.rel_pos
        key = None if grad else (H, W, lay["tr"], lay["tc"], dtype, device, p._version, p.data_ptr())
        if not grad and key in cache:
            return cache[key]
        s, ka = self.stride, self.kernel_att
        r = ka // 2
        tr, tc, ty, kh, kw, top = (lay[k] for k in ("tr", "tc", "ty", "kh", "kw", "top"))
        ar = lambda m: torch.arange(m, device=device)  # noqa: E731
        dy = (ar(kh) - top).view(1, -1) - s * ar(tr).view(-1, 1)  # (tr, kh): key row - query row
        rows = s * tr * ar(ty).view(-1, 1) - top + ar(kh)  # (ty, kh): image row of each block's key rows
        row_ok = ((rows >= 0) & (rows < H)).view(1, ty, 1, 1, kh, 1)  # padding rows are masked
        masks = []
        for j0, _ in lay["runs"]:
            dx = (lay["c0"][j0] - s * tc * j0 + ar(kw)).view(1, -1) - s * ar(tc).view(-1, 1)  # (tc, kw)
            dyv, dxv = dy.view(tr, 1, kh, 1), dx.view(1, tc, 1, kw)
            inside = (dyv.abs() <= r) & (dxv.abs() <= r)  # (tr, tc, kh, kw): key in the query's window
            idx = ((dyv + r) * ka + dxv + r).clamp(0, ka * ka - 1)  # window offset, row-major
            bias = self.rel_pos[:, idx].unsqueeze(1)  # (N, 1, tr, tc, kh, kw): eq. (9)'s position term
            masks.append(bias.masked_fill(~(inside & row_ok), float("-inf")))  # (N, ty, tr, tc, kh, kw)
        # -inf made finite: a padded query beyond (Ho, Wo) may see no key at all, and a finite row keeps its
        # (cropped) softmax and gradients free of NaN
        out = torch.stack(masks).clamp(min=-1e30).reshape(len(masks), 1, self.num_heads * ty, tr * tc, kh * kw)
        out = out.to(dtype)
        if not grad:
            cache.clear()
            cache[key] = out
        return out

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Local-window multi-head self-attention, eqs. (9) and (11); (B, C, H, W) x3 -> (B, C, Ho, Wo)."""
        return self._attend(q, torch.cat([k, v], dim=1))

    def _attend(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """``attention`` with keys and values stacked along channels, kv: (B, 2C, H, W), any memory layout.

        Blocked local attention. The output map is cut into blocks of tr x tc queries (``_blocks``; the
        whole map when it is small); block (i, j) reads the keys of image rows s*tr*i - r ... (kh rows;
        all H when there is one row of blocks) and of kw columns from c0(j) (clamped into the image),
        which cover all its windows. Keys are read channels-last from ``_strips``, a copy cut into column
        strips with each head's rows apart, (2, tx, B, g, kw, d), where the keys of block (i, j) of head h
        are one strided run of memory (rows h*rh + s*tr*i ...): every block is a view, and (strip, image)
        and (head, block row) are the two batch dims of one fused scaled dot-product attention per strip
        run (strips whose windows sit alike, so they share a mask). The whole-map block reads the map in
        place. The mask (``_masks``) adds the relative-position bias and -1e30 off the window or the
        image (rows of padding or of another head), so this is exactly the windowed softmax (masked keys
        get weight 0); the products also run over the masked keys of the block.
        """
        B, C, H, W = q.shape
        n, d, s = self.num_heads, self.head_dim, self.stride
        lay = self._layout(H, W)
        ho, wo, tr, tc, ty, tx = (lay[k] for k in ("ho", "wo", "tr", "tc", "ty", "tx"))
        kh, kw, g = lay["kh"], lay["kw"], lay["g"]
        masks = self._masks(H, W, q.dtype, q.device)  # (runs, 1, N*ty, tr*tc, kh*kw)
        kvl = kv.permute(0, 2, 3, 1)  # (B, H, W, 2C)
        ql = q[:, :, ::s, ::s].permute(0, 2, 3, 1)  # (B, Ho, Wo, C): queries at the output positions
        kvl = kvl if kvl.stride(-1) == 1 else kvl.contiguous()  # channels-last
        ql = ql if ql.stride(-1) == 1 else ql.contiguous()
        # With autograd: one chunk, and ops whose backward is one pass (split, stack, cat, index_select).
        # Without: in-place copies into preallocated buffers (with autograd, each slice written or read
        # would cost a zero-filled buffer-sized gradient), batch chunks of about ``chunk_elems``.
        track = torch.is_grad_enabled() and (q.requires_grad or kv.requires_grad or masks.requires_grad)
        chunks = [slice(None)] if track else self._chunks(B, tx * g * kw * 2 * d)
        sizes = [j1 - j0 for j0, j1 in lay["runs"]]
        out = q.new_empty(B, ty, tr, tx, tc, n, d)  # channels-last, blocks padded
        for sl in chunks:
            kvp, qb = kvl[sl], ql[sl]
            nb = kvp.shape[0]
            if lay["view"]:  # one block: (nb, N, keys, d) views of the map, heads as the second dim
                kv_ = kvp.reshape(nb, H * W, 2, n, d).permute(2, 0, 3, 1, 4).unsqueeze(1)  # (2, 1, nb, N, HW, d)
            else:  # (2, tx, nb, N*ty, kh*kw, d): views into the strips, block (h, i) at row h*rh + s*tr*i
                strips = self._strips(kvp, lay, n, track)  # (2, tx, nb, g, kw, d)
                kv_ = strips.unfold(3, kh, s * tr)[:, :, :, : n * ty].permute(0, 1, 2, 3, 6, 4, 5)  # (.., kh, kw, d)
            if (ty * tr, tx * tc) != (ho, wo):
                qb = F.pad(qb, (0, 0, 0, tx * tc - wo, 0, ty * tr - ho))  # (nb, ty*tr, tx*tc, C)
            qb = qb.reshape(nb, ty, tr, tx, tc, n, d).permute(3, 0, 5, 1, 2, 4, 6)  # (tx, nb, N, ty, tr, tc, d)
            qb = qb.reshape(tx * nb, n * ty, tr * tc, d)  # a view for the whole map at stride 1
            runs = []
            for kr, vr, qr, mask in zip(
                kv_[0].split(sizes), kv_[1].split(sizes), qb.split([z * nb for z in sizes]), masks.unbind(0)
            ):
                # eqs. (9), (11): softmax(q.k / sqrt(d) + position) . v for every head and block of the run;
                # masked keys get weight 0
                runs.append(
                    F.scaled_dot_product_attention(
                        qr,  # (strips*nb, N*ty, tr*tc, d)
                        kr.reshape(-1, n * ty, kh * kw, d),  # a view
                        vr.reshape(-1, n * ty, kh * kw, d),
                        attn_mask=mask,  # (1, N*ty, tr*tc, kh*kw)
                        scale=self.scale,
                    )  # (strips*nb, N*ty, tr*tc, d)
                )
            if track:  # blocks back in place
                o = torch.cat(runs).view(tx, nb, n, ty, tr, tc, d)
                out = o.permute(1, 3, 4, 0, 5, 2, 6)  # (B, ty, tr, tx, tc, N, d)
            else:
                ob = out[sl]
                for (j0, j1), o in zip(lay["runs"], runs):
                    ob[:, :, :, j0:j1].copy_(o.view(j1 - j0, nb, n, ty, tr, tc, d).permute(1, 3, 4, 0, 5, 2, 6))
        out = out.reshape(B, ty * tr, tx * tc, C)[:, :ho, :wo]
        return out.permute(0, 3, 1, 2)  # (B, C, Ho, Wo), heads concatenated (eq. (11)), channels-last memory

    @staticmethod
    def _strips(kvp: torch.Tensor, lay: dict, n: int, track: bool) -> torch.Tensor:
        """Keys/values (b, H, W, 2C) cut into column strips, heads apart: (2, tx, b, g, kw, d).

        Strip j holds columns c0(j) ... c0(j) + kw - 1; image row y of head h sits at row top + h*rh + y
        (rh >= H), the other rows are zeros. A block reads rows of zeros or of the neighbouring head only
        where its window leaves the image, and the mask drops them.
        """
        nb, H, W, P = kvp.shape
        d = P // (2 * n)
        tx, rh, g, kw, top = lay["tx"], lay["rh"], lay["g"], lay["kw"], lay["top"]  # H <= rh
        if track:
            kvp = F.pad(kvp, (0, 0, 0, 0, 0, rh - H))  # (b, rh, W, 2C)
            cols = torch.tensor([c + w for c in lay["c0"] for w in range(kw)], device=kvp.device)
            st = kvp.index_select(2, cols).view(nb, rh, tx, kw, 2, n, d).permute(4, 2, 0, 5, 1, 3, 6)
            st = st.reshape(2, tx, nb, n * rh, kw, d)  # head h's row y at h*rh + y
            return F.pad(st, (0, 0, 0, 0, top, g - n * rh - top))
        st = kvp.new_empty(2, tx, nb, g, kw, d)  # one copy
        heads = st[:, :, :, top : top + n * rh].view(2, tx, nb, n, rh, kw, d)
        st[:, :, :, :top].zero_()
        st[:, :, :, top + n * rh :].zero_()
        heads[:, :, :, :, H:].zero_()
        for j, c in enumerate(lay["c0"]):
            src = kvp[:, :, c : c + kw].reshape(nb, H, kw, 2, n, d).permute(3, 0, 4, 1, 2, 5)
            heads[:, j, :, :, :H].copy_(src)  # (2, b, N, H, kw, d)
        return st

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

    def conv_weight(self, scale: torch.Tensor | None = None) -> torch.Tensor:
        """The convolution path as one k x k conv of the input, (C, Cin, k, k); it equals ``convolution``.

        Projections (eq. (10)), the fully connected mix (eq. (6)) and the grouped shift conv (eqs. (7),
        (8)) are all linear and bias-free, so they compose: map j*kk + i of the mix is
        P[j, i] = sum_c fc[i, c] W_qkv[c*d + j] (a (Cin,) vector), and output channel o (group g = o // N
        of the grouped conv) is sum_i W_dep[o, i] * shift(P[g, i] . x), a k x k conv with weight
        W[o, :, a, b] = sum_i W_dep[o, i, a, b] P[g(o), i]. One dense conv runs far faster than the
        kk*d-channel intermediate and the grouped conv it replaces (same result; gradients flow through W).
        ``scale`` (a scalar, beta in ``forward``) multiplies the result, applied to the small factor P.
        """
        n, d, cin, kc = self.num_heads, self.head_dim, self.in_chs, self.kernel_conv
        w_qkv = torch.cat([self.q.weight, self.k.weight, self.v.weight]).view(3 * n, d, cin)  # (3N, d, Cin)
        fc = self.fc.weight[:, :, 0, 0]  # (kk, 3N)
        p = torch.einsum("ic,cjn->jin", fc if scale is None else scale * fc, w_qkv)  # (d, kk, Cin)
        w_dep = self.dep_conv.weight.view(d, n, kc * kc, kc * kc)  # (groups d, N, kk maps, k*k taps)
        w = torch.einsum("gmia,gin->gmna", w_dep, p)  # (d, N, Cin, k*k): output channel o = g*N + m
        return w.reshape(self.out_chs, cin, kc, kc)

    def _fused_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights of ``forward``: the projections (3C, Cin) and the composed conv (C, Cin, k, k).

        Stage I, eq. (10): the three 1x1 projections as one matmul; alpha is folded into v (the attention
        is linear in v) and beta into the conv weight (``conv_weight``). Without autograd (inference) both
        are cached per parameter version, like a re-parameterised block (one extra copy of the weights).
        """
        params = [self.q.weight, self.k.weight, self.v.weight, self.fc.weight, self.dep_conv.weight]
        params += [self.alpha, self.beta]
        grad = _no_cache() or (torch.is_grad_enabled() and any(p.requires_grad for p in params))
        cache = self.__dict__.setdefault("_weight_cache", {})
        key = None if grad else tuple((p._version, p.data_ptr(), p.dtype, p.device) for p in params)
        if not grad and key in cache:
            return cache[key]
        w = torch.cat([self.q.weight, self.k.weight, self.alpha * self.v.weight])[:, :, 0, 0]
        out = w, self.conv_weight(self.beta)  # eqs. (6)-(8), times beta
        if not grad:
            cache.clear()
            cache[key] = out
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) -> (B, Cout, ceil(H/s), ceil(W/s))
        B, _, H, W = x.shape
        C = self.out_chs
        w, w_conv = self._fused_weights()  # (3C, Cin), (C, Cin, k, k)
        out = F.conv2d(x, w_conv, stride=self.stride, padding=self.kernel_conv // 2)  # (B, C, Ho, Wo)
        xf = x.flatten(2).transpose(1, 2)  # (B, H*W, Cin)
        lay = self._layout(H, W)
        track = torch.is_grad_enabled() and any(p.requires_grad for p in (x, w, self.rel_pos))
        per_image = H * W * 3 * C + lay["tx"] * lay["g"] * lay["kw"] * 2 * self.head_dim  # projections, strips
        chunks = [slice(None)] if track else self._chunks(B, per_image)
        for sl in chunks:
            qkv = torch.matmul(xf[sl], w.t())  # (b, H*W, 3C)
            qkv = qkv.view(-1, H, W, 3 * C).permute(0, 3, 1, 2)  # (b, 3C, H, W), channels-last memory
            q, kv = qkv[:, :C], qkv[:, C:]  # (b, C, H, W), (b, 2C, H, W)
            if len(chunks) == 1:
                out = out.add_(self._attend(q, kv))  # beta * conv + alpha * attention
            else:  # inference, per batch chunk
                out[sl] += self._attend(q, kv)
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.in_chs}, {self.out_chs}, stride={self.stride}, heads={self.num_heads}, "
            f"kernel_att={self.kernel_att}, kernel_conv={self.kernel_conv}"
        )
