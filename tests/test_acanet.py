"""ACANet building blocks (ACCB, FCSA, patchify), the ACANet-18 variants and the torchvision baselines."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models as tvm
from torch.utils.flop_counter import FlopCounterMode

from fgic.models import create_model, list_models, model_outputs, reparameterize
from fgic.models.pretrained import PretrainedWeightsError
from fgic.nn.acb import ACCB
from fgic.nn.fcsa import FCSA
from fgic.nn.patchify import Patchify


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            # random but tame statistics, so activations stay O(1) through 18 layers
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.3)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    return fc.get_total_flops()


def count(model: nn.Module, cls: type) -> int:
    return sum(isinstance(m, cls) for m in model.modules())


# ---------------------------------------------------------------- ACCB


@pytest.mark.parametrize("stride,size", [(1, 8), (2, 8), (2, 7), (1, 5)])
def test_accb_fuses_to_one_conv(stride, size):
    torch.manual_seed(0)
    block = ACCB(4, 6, stride=stride).double()
    randomize_bn(block)
    block.eval()
    x = torch.randn(2, 4, size, size + 1, dtype=torch.float64)
    before = block(x)
    # eq. (1): the three branches at the same stride give outputs of the same size, summed
    ref = sum(
        bn(conv(x))
        for conv, bn in [
            (block.square, block.square_bn),
            (block.hor, block.hor_bn),
            (block.ver, block.ver_bn),
        ]
    )
    torch.testing.assert_close(before, ref)
    block.reparameterize()
    assert block.deployed and not hasattr(block, "square") and not hasattr(block, "hor_bn")
    assert isinstance(block.fused, nn.Conv2d) and block.fused.bias is not None
    assert block.fused.kernel_size == (3, 3) and block.fused.stride == (stride, stride)
    torch.testing.assert_close(block(x), before, atol=1e-10, rtol=1e-10)
    assert n_params(block) == 6 * 4 * 9 + 6  # exactly one 3x3 conv with bias


def test_accb_kernel_placement():
    # with identity BNs the fused kernel is the square kernel plus the 1x3 in the centre row and 3x1 in the
    # centre column, the other entries untouched
    block = ACCB(1, 1).eval()
    with torch.no_grad():
        block.square.weight.zero_()
        block.hor.weight.copy_(torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 1, 3))
        block.ver.weight.copy_(torch.tensor([10.0, 20.0, 30.0]).view(1, 1, 3, 1))
        for bn in (block.square_bn, block.hor_bn, block.ver_bn):
            bn.running_var.fill_(1.0 - bn.eps)
    kernel, bias = block.fused_kernel_bias()
    expected = torch.tensor([[0.0, 10.0, 0.0], [1.0, 22.0, 3.0], [0.0, 30.0, 0.0]])
    torch.testing.assert_close(kernel[0, 0], expected)
    torch.testing.assert_close(bias, torch.zeros(1))


def test_acanet_reparameterize_whole_network():
    torch.manual_seed(0)
    model = create_model("acanet18", num_classes=5, width=8)
    randomize_bn(model)
    model.eval()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        before = model(x)
    reparameterize(model)
    assert model.num_reparameterized == count(model, ACCB) == 8
    assert all(m.deployed for m in model.modules() if isinstance(m, ACCB))
    with torch.no_grad():
        after = model(x)
    assert before.abs().max() > 0.1  # a non-trivial output
    assert (after - before).abs().max().item() <= 1e-4


def test_fused_network_costs_the_plain_conv_network():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    fused = reparameterize(create_model("acanet18", num_classes=5, width=8))
    # the plain-conv network it replaces: every ACCB swapped for one 3x3 conv with bias
    plain = create_model("acanet18", num_classes=5, width=8)
    for mod in list(plain.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, ACCB):
                setattr(mod, name, nn.Conv2d(child.in_chs, child.out_chs, 3, child.stride, 1, bias=True))
    assert n_params(fused) == n_params(plain)
    assert flops(fused, x) == flops(plain, x)
    # against "Minus ACCB" (3x3 conv + BN): same conv FLOPs, one BN (2C) vs one bias (C) per block
    no_accb = create_model("acanet18_no_accb", num_classes=5, width=8)
    assert flops(fused, x) == flops(no_accb, x)
    accb_channels = sum(
        m.out_chs for m in create_model("acanet18", 5, width=8).modules() if isinstance(m, ACCB)
    )
    assert n_params(no_accb) - n_params(fused) == accb_channels
    # and training-time ACCB really costs more
    assert flops(create_model("acanet18", 5, width=8), x) > flops(fused, x)


# ---------------------------------------------------------------- FCSA


@pytest.mark.parametrize("stride,h,w", [(1, 8, 8), (2, 8, 8), (1, 7, 5), (2, 7, 5), (2, 3, 3), (2, 1, 1)])
def test_fcsa_shapes_and_gradients(stride, h, w):
    torch.manual_seed(0)
    m = FCSA(6, 8, stride=stride, num_heads=2, kernel_att=5)
    x = torch.randn(2, 6, h, w, requires_grad=True)
    y = m(x)
    assert y.shape == (2, 8, math.ceil(h / stride), math.ceil(w / stride))
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert m.alpha.grad.abs() > 0 and m.beta.grad.abs() > 0 and x.grad.abs().sum() > 0


def naive_local_attention(m: FCSA, q, k, v):
    """Loop implementation of eqs. (9), (11): window around each strided query, masked outside the image."""
    B, C, H, W = q.shape
    n, d, ka, s, r = m.num_heads, m.head_dim, m.kernel_att, m.stride, m.kernel_att // 2
    ho, wo = math.ceil(H / s), math.ceil(W / s)
    out = torch.zeros(B, C, ho, wo, dtype=q.dtype)
    for b in range(B):
        for head in range(n):
            sl = slice(head * d, (head + 1) * d)
            for i in range(ho):
                for j in range(wo):
                    ci, cj = i * s, j * s
                    logits, vals = [], []
                    for a in range(ka):
                        for bb in range(ka):
                            y, x = ci + a - r, cj + bb - r
                            if 0 <= y < H and 0 <= x < W:
                                score = (q[b, sl, ci, cj] * k[b, sl, y, x]).sum() * d**-0.5
                                logits.append(score + m.rel_pos[head, a * ka + bb])
                                vals.append(v[b, sl, y, x])
                    attn = torch.stack(logits).softmax(0)
                    out[b, sl, i, j] = (attn[:, None] * torch.stack(vals)).sum(0)
    return out


@pytest.mark.parametrize("stride,ka,h,w", [(1, 3, 5, 4), (2, 3, 5, 4), (1, 7, 3, 6), (2, 5, 2, 1)])
def test_fcsa_attention_matches_loops(stride, ka, h, w):
    torch.manual_seed(1)
    m = FCSA(3, 4, stride=stride, num_heads=2, kernel_att=ka).double()
    with torch.no_grad():
        m.rel_pos.normal_()
    q, k, v = (torch.randn(2, 4, h, w, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(m.attention(q, k, v), naive_local_attention(m, q, k, v))


@pytest.mark.parametrize("stride", [1, 2])
def test_fcsa_conv_path_is_a_3x3_conv_at_init(stride):
    # eqs. (5)-(8): 1x1 projections + shift-and-sum == a standard kxk conv whose kernel at (a, b) is the
    # fc-mix of the projection rows; the grouped conv starts as pure shifts, so this holds at init.
    torch.manual_seed(2)
    cin, cout, heads = 3, 6, 3
    m = FCSA(cin, cout, stride=stride, num_heads=heads).double()
    d, kc = m.head_dim, m.kernel_conv
    proj = torch.cat([m.q.weight, m.k.weight, m.v.weight])[:, :, 0, 0].view(3 * heads, d, cin)  # (3N, d, Cin)
    fc = m.fc.weight[:, :, 0, 0]  # (kc*kc, 3N)
    w_eff = torch.zeros(cout, cin, kc, kc, dtype=torch.float64)
    for o in range(cout):
        g = o // heads  # group of the grouped conv = channel index inside a head
        for i in range(kc * kc):
            w_eff[o, :, i // kc, i % kc] = (fc[i][:, None] * proj[:, g, :]).sum(0)
    x = torch.randn(2, cin, 7, 6, dtype=torch.float64)
    q, k, v = m.q(x), m.k(x), m.v(x)
    qkv = torch.cat([q, k, v], 1)  # (B, 3C, H, W)
    torch.testing.assert_close(m.convolution(qkv), F.conv2d(x, w_eff, stride=stride, padding=kc // 2))


# ---------------------------------------------------------------- patchify


@pytest.mark.parametrize("h,w", [(8, 8), (7, 5), (1, 2)])
def test_patchify_pads_right_bottom(h, w):
    torch.manual_seed(0)
    m = Patchify(3, 5, norm=False)
    x = torch.randn(2, 3, h, w)
    y = m(x)
    assert y.shape == (2, 5, math.ceil(h / 2), math.ceil(w / 2))
    padded = torch.zeros(2, 3, 2 * math.ceil(h / 2), 2 * math.ceil(w / 2))
    padded[:, :, :h, :w] = x
    torch.testing.assert_close(y, F.conv2d(padded, m.conv.weight, m.conv.bias, stride=2))
    # same output size as a 3x3 stride-2 conv with padding 1 (the main path)
    assert y.shape[-2:] == nn.Conv2d(3, 5, 3, 2, 1)(x).shape[-2:]


# ---------------------------------------------------------------- ACANet-18


def test_registered():
    names = list_models()
    for n in (
        "acanet18",
        "acanet18_no_accb",
        "acanet18_plain",
        "vgg16",
        "googlenet",
        "mobilenetv3_large",
        "densenet121",
        "convnext_tiny_tv",
    ):
        assert n in names


@pytest.mark.parametrize("name", ["acanet18", "acanet18_no_accb", "acanet18_plain"])
@pytest.mark.parametrize("size", [32, 40, 64])
def test_acanet_forward_backward(name, size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, width=8, kernel_att=3)
    x = torch.randn(2, 3, size, size)
    out = model_outputs(model, x)
    h = math.ceil(size / 32)
    assert out.feature_map.shape == (2, 64, h, h) and model.feature_channels == 64
    assert out.embedding.shape == (2, model.num_features) and out.logits.shape == (2, 7)
    torch.testing.assert_close(model(x), out.logits)
    F.cross_entropy(out.logits, torch.tensor([0, 3])).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_ablation_variants_differ_in_the_expected_modules():
    kinds = {n: create_model(n, 5, width=8) for n in ("acanet18", "acanet18_no_accb", "acanet18_plain")}
    got = {n: (count(m, FCSA), count(m, ACCB), count(m, Patchify)) for n, m in kinds.items()}
    assert got == {"acanet18": (8, 8, 3), "acanet18_no_accb": (8, 0, 3), "acanet18_plain": (0, 0, 3)}
    assert count(create_model("acanet18_plain", 5, width=8, down="conv"), Patchify) == 0
    assert count(create_model("acanet18", 5, width=8, fcsa_stages=(3, 4)), FCSA) == 4
    stem = create_model("acanet18", 5, width=8, patch_stem=True).features.maxpool
    assert isinstance(stem, Patchify)


def test_plain_with_conv_shortcuts_is_resnet18():
    ours = create_model("acanet18_plain", 10, down="conv")
    ref = tvm.resnet18(num_classes=10)
    assert n_params(ours) == n_params(ref)
    assert sorted(p.shape for p in ours.parameters()) == sorted(p.shape for p in ref.parameters())


def test_acanet_pretrained(tmp_path):
    with pytest.raises(PretrainedWeightsError):
        create_model("acanet18", 5, pretrained=True, width=8)
    src = create_model("acanet18", 5, width=8)
    path = tmp_path / "acanet.pth"
    torch.save(src.state_dict(), path)
    dst = create_model("acanet18", 5, pretrained=str(path), width=8)
    torch.testing.assert_close(dst.features.layer2[0].conv1.q.weight, src.features.layer2[0].conv1.q.weight)


# ---------------------------------------------------------------- torchvision baselines


@pytest.mark.parametrize(
    "name,channels,dim",
    [
        ("vgg16", 512, 512),
        ("googlenet", 1024, 1024),
        ("mobilenetv3_large", 960, 1280),
        ("densenet121", 1024, 1024),
        ("convnext_tiny_tv", 768, 768),
    ],
)
def test_baselines_follow_the_protocol(name, channels, dim):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model_outputs(model, x)
        assert out.feature_map.shape == (2, channels, 2, 2)
        assert out.embedding.shape == (2, dim) and out.logits.shape == (2, 4)
        torch.testing.assert_close(model(x), out.logits)
    assert (model.feature_channels, model.num_features) == (channels, dim)


def test_baseline_pretrained_missing_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("FGIC_ALLOW_DOWNLOAD", "0")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(PretrainedWeightsError):
        create_model("mobilenetv3_large", 4, pretrained=True)
    with pytest.raises(PretrainedWeightsError):
        create_model("vgg16", 4, pretrained=str(tmp_path / "missing.pth"))


def test_baseline_pretrained_from_file(tmp_path):
    torch.manual_seed(0)
    mb = tvm.mobilenet_v3_large()
    torch.save(mb.state_dict(), tmp_path / "mb.pth")
    m = create_model("mobilenetv3_large", 4, pretrained=str(tmp_path / "mb.pth"))
    torch.testing.assert_close(m.features[0][0].weight, mb.features[0][0].weight)
    torch.testing.assert_close(m.pre_logits[0].weight, mb.classifier[0].weight)
    # DenseNet checkpoints in the old 'norm.1' key format load too
    dn = tvm.densenet121()
    old = {
        k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v for k, v in dn.state_dict().items()
    }
    assert any(".norm.1." in k for k in old)
    torch.save(old, tmp_path / "dn.pth")
    m = create_model("densenet121", 4, pretrained=str(tmp_path / "dn.pth"))
    ref = dn.features.denseblock1.denselayer1
    torch.testing.assert_close(m.features.features.denseblock1.denselayer1.norm1.weight, ref.norm1.weight)
    torch.testing.assert_close(m.features.features.denseblock1.denselayer1.conv2.weight, ref.conv2.weight)
    # GoogLeNet with weights keeps torchvision's input re-normalisation
    gn = tvm.googlenet(weights=None, aux_logits=False, init_weights=True)
    torch.save(gn.state_dict(), tmp_path / "gn.pth")
    m = create_model("googlenet", 4, pretrained=str(tmp_path / "gn.pth")).eval()
    assert hasattr(m.features, "transform_input")
    gn.transform_input = True
    gn.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            m.forward_head(m.forward_features(x), pre_logits=True),
            torch.flatten(gn.avgpool(nn.Sequential(*list(gn.children())[:-3])(gn._transform_input(x))), 1),
        )
