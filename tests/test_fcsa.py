"""FCSA's blocked local attention and fused forward against the offset-loop, step-by-step forms they replaced."""

import math

import pytest
import torch
import torch.nn.functional as F

from fgic.nn.fcsa import FCSA


def loop_attention(m: FCSA, q, k, v):
    """The previous ``FCSA.attention``: one pass over the window offsets, keys as strided slices."""
    B, C, H, W = q.shape
    n, d, s, ka = m.num_heads, m.head_dim, m.stride, m.kernel_att
    r = ka // 2
    rh, rw = min(r, H - 1), min(r, W - 1)
    q = q[:, :, ::s, ::s] * m.scale  # (B, C, Ho, Wo)
    ho, wo = q.shape[-2:]
    q = q.reshape(B, n, d, ho, wo)
    offsets = [(dy, dx) for dy in range(-rh, rh + 1) for dx in range(-rw, rw + 1)]
    idx = torch.tensor([(dy + r) * ka + dx + r for dy, dx in offsets])
    inside = F.unfold(q.new_ones(1, 1, H, W), (2 * rh + 1, 2 * rw + 1), padding=(rh, rw), stride=s)
    inside = inside.view(1, 1, -1, ho, wo)
    kp, vp = F.pad(k, (rw, rw, rh, rh)), F.pad(v, (rw, rw, rh, rh))

    def at(t, dy, dx):  # t at (s*i + dy, s*j + dx), (B, N, d, Ho, Wo)
        t = t[:, :, rh + dy : rh + dy + s * (ho - 1) + 1 : s, rw + dx : rw + dx + s * (wo - 1) + 1 : s]
        return t.reshape(B, n, d, ho, wo)

    logits = torch.stack([(q * at(kp, dy, dx)).sum(2) for dy, dx in offsets], 2)  # (B, N, n_off, Ho, Wo)
    logits = logits + m.rel_pos[:, idx].view(1, n, -1, 1, 1)
    attn = logits.masked_fill(inside == 0, float("-inf")).softmax(dim=2)
    out = sum(attn[:, :, i : i + 1] * at(vp, dy, dx) for i, (dy, dx) in enumerate(offsets))
    return out.reshape(B, C, ho, wo)


def reference_forward(m: FCSA, x):
    """The paper's step-by-step form: alpha * (offset-loop attention) + beta * (shift-and-sum convolution)."""
    q, k, v = m.q(x), m.k(x), m.v(x)
    return m.alpha * loop_attention(m, q, k, v) + m.beta * m.convolution(torch.cat([q, k, v], 1))


# ACANet-18 at 224 px (width 64, 4 heads, 7x7 window): (Cin, C, stride, H) of its eight FCSA blocks; the same
# geometry at 112 px is (32, 128, 1, 28) and its halves
ACANET_224 = [(64, 64, 1, 56), (64, 128, 2, 56), (128, 128, 1, 28), (128, 256, 2, 28), (256, 256, 1, 14),
              (256, 512, 2, 14), (512, 512, 1, 7)]  # fmt: skip


@pytest.mark.parametrize("cin,c,stride,h", ACANET_224)
def test_attention_equals_the_loop_at_every_acanet_stage(cin, c, stride, h):
    torch.manual_seed(h + c)
    m = FCSA(cin, c, stride=stride)
    with torch.no_grad():
        m.rel_pos.normal_()
    q, k, v = (torch.randn(1, c, h, h) for _ in range(3))  # (B, C, H, W)
    ref = loop_attention(m, q, k, v)
    torch.testing.assert_close(m.attention(q, k, v), ref, atol=1e-5, rtol=1e-5)  # autograd path
    with torch.no_grad():  # inference path (in-place buffers, cached masks)
        torch.testing.assert_close(m.attention(q, k, v), ref, atol=1e-5, rtol=1e-5)


CASES = [  # (stride, heads, kernel_att, H, W, blocks): blocks None = the automatic choice
    (1, 4, 7, 14, 14, None),  # whole map
    (2, 4, 7, 14, 14, None),
    (1, 4, 7, 15, 17, None),  # odd sizes, strips of 2 x 8 with partial blocks
    (2, 4, 7, 29, 31, None),
    (1, 2, 7, 9, 13, (4, 4)),  # several row blocks (padded rows) and strips
    (2, 2, 7, 9, 13, (2, 2)),
    (1, 2, 5, 12, 20, (3, 5)),  # three runs of strips: clamped left, interior, clamped right
    (1, 2, 7, 10, 30, (1, 4)),
    (1, 2, 7, 8, 9, (8, 2)),  # one row of blocks (no padding), several strips
    (2, 2, 7, 16, 11, (3, 11)),  # one strip (the whole width), several row blocks
    (1, 1, 5, 3, 3, None),  # map smaller than the window
    (1, 1, 5, 3, 3, (1, 1)),
    (2, 8, 3, 7, 5, (2, 2)),
    (2, 8, 3, 7, 5, None),
    (1, 2, 1, 5, 6, (2, 2)),  # 1 x 1 window
    (2, 2, 1, 5, 6, (2, 2)),
    (2, 2, 1, 6, 6, (1, 2)),  # stride 2, even size, 1 x 1 window: the last image row is never read
    (2, 2, 1, 6, 6, (1, 3)),
]


@pytest.mark.parametrize("stride,heads,ka,h,w,blocks", CASES)
def test_blocked_attention_equals_the_loop(stride, heads, ka, h, w, blocks):
    torch.manual_seed(h * 31 + w)
    m = FCSA(8, 16, stride=stride, num_heads=heads, kernel_att=ka)
    m.tile = blocks
    with torch.no_grad():
        m.rel_pos.normal_()
    q, k, v = (torch.randn(2, 16, h, w) for _ in range(3))  # (B, C, H, W)
    new, old = m.attention(q, k, v), loop_attention(m, q, k, v)  # rel_pos requires grad: autograd path
    assert new.shape == (2, 16, math.ceil(h / stride), math.ceil(w / stride))
    torch.testing.assert_close(new, old, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # inference path, whole batch and one image per chunk
        torch.testing.assert_close(m.attention(q, k, v), old, atol=1e-5, rtol=1e-5)
        m.chunk_elems = 1
        torch.testing.assert_close(m.attention(q, k, v), old, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stride,blocks", [(1, None), (2, None), (1, (4, 4)), (2, (2, 3)), (1, (2, 8))])
def test_blocked_attention_gradients_equal_the_loop(stride, blocks):
    torch.manual_seed(3)
    m = FCSA(8, 8, stride=stride, num_heads=2, kernel_att=5)
    m.tile = blocks  # 9 x 11 map: partial blocks whose padded queries see no key
    with torch.no_grad():
        m.rel_pos.normal_()
    inputs = [torch.randn(2, 8, 9, 11, requires_grad=True) for _ in range(3)]
    g = torch.randn(2, 8, math.ceil(9 / stride), math.ceil(11 / stride))
    grads = []
    for fn in (m.attention, lambda *a: loop_attention(m, *a)):
        for t in [*inputs, m.rel_pos]:
            t.grad = None
        (fn(*inputs) * g).sum().backward()
        grads.append([t.grad.clone() for t in [*inputs, m.rel_pos]])
    for a, b in zip(*grads):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("blocks", [None, (2, 2)])
def test_attention_gradcheck_float64(blocks):
    torch.manual_seed(8)
    m = FCSA(4, 4, stride=1, num_heads=2, kernel_att=3).double()
    m.tile = blocks
    with torch.no_grad():
        m.rel_pos.normal_()
    inputs = [torch.randn(1, 4, 5, 4, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    assert torch.autograd.gradcheck(lambda q, k, v, p: m.attention(q, k, v), (*inputs, m.rel_pos))


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("stride,h,w", [(1, 15, 15), (2, 15, 15), (1, 20, 17), (2, 6, 7)])
def test_whole_module_matches_the_loop_form(mode, stride, h, w):
    torch.manual_seed(4)
    m = FCSA(16, 32, stride=stride, num_heads=4)
    m.train(mode == "train")
    with torch.no_grad():  # trained values, not the initialisation
        m.rel_pos.normal_()
        m.alpha.fill_(0.7)
        m.beta.fill_(-0.3)
        m.fc.weight.normal_()
    x = torch.randn(2, 16, h, w)  # (B, Cin, H, W)
    ref = reference_forward(m, x)
    with torch.no_grad():  # inference path (cached masks)
        torch.testing.assert_close(m(x), ref, atol=1e-5, rtol=1e-5)
    x.requires_grad_()
    out = m(x)  # with autograd
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref)
    wrt = [x, *m.parameters()]  # input, projections, rel_pos, fc, dep_conv, alpha, beta
    new = torch.autograd.grad((out * g).sum(), wrt)
    old = torch.autograd.grad((reference_forward(m, x) * g).sum(), wrt)
    for a, b in zip(new, old):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("param", ["rel_pos", "v.weight", "fc.weight", "dep_conv.weight", "alpha", "beta"])
def test_inference_caches_follow_the_parameters(param):
    torch.manual_seed(5)
    m = FCSA(8, 8, stride=1, num_heads=2, kernel_att=5).eval()
    x = torch.randn(1, 8, 9, 9)  # (B, Cin, H, W)
    with torch.no_grad():
        a = m(x)
        m.get_parameter(param).normal_()  # an optimiser step changes a parameter in place
        b = m(x)  # masks and fused weights are cached without autograd, per parameter version
    fresh = m(x)  # with autograd: nothing cached
    assert not torch.allclose(a, b)
    torch.testing.assert_close(b, fresh.detach())


@pytest.mark.parametrize("stride,heads", [(1, 4), (2, 2), (2, 8)])
def test_dense_conv_path_equals_the_shift_and_sum_form(stride, heads):
    torch.manual_seed(6)
    m = FCSA(6, 16, stride=stride, num_heads=heads)
    with torch.no_grad():  # trained weights, not the shift initialisation
        m.dep_conv.weight.normal_()
        m.fc.weight.normal_()
    x = torch.randn(2, 6, 11, 9)  # (B, Cin, H, W)
    qkv = torch.cat([m.q(x), m.k(x), m.v(x)], 1)  # (B, 3C, H, W)
    dense = F.conv2d(x, m.conv_weight(), stride=stride, padding=1)
    torch.testing.assert_close(dense, m.convolution(qkv), atol=1e-4, rtol=1e-4)


def test_inference_mask_cache_follows_the_blocks():
    torch.manual_seed(7)
    m = FCSA(8, 8, stride=1, num_heads=2, kernel_att=5).eval()
    x = torch.randn(1, 8, 9, 9)  # (B, Cin, H, W)
    with torch.no_grad():
        a = m(x)
        m.tile = (4, 4)
        b = m(x)  # a cached mask of the whole map would not fit
        c = m(torch.randn(1, 8, 12, 12))  # nor one of another size
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert c.shape == (1, 8, 12, 12)


def test_flop_count_counts_the_attention_whatever_was_cached():
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(9)
    m = FCSA(8, 16, num_heads=2).eval()
    x = torch.randn(1, 8, 20, 20)  # (B, Cin, H, W): strips of blocks
    counts = []
    for _ in range(3):
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            m(x)
        counts.append(fc.get_total_flops())
        with torch.no_grad():
            m(x)  # caches filled outside the counter
    assert counts[0] == counts[1] == counts[2]
    window = 2 * 2 * 16 * 20 * 20 * 49  # q.k and attn.v over 7 x 7 windows (an upper bound here)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m.attention(*(torch.randn(1, 16, 20, 20) for _ in range(3)))
    assert fc.get_total_flops() >= window  # the fused CPU kernel is counted, masked keys included
