"""SCRA block, ConvNeXt-V2 (+ SCRA) models and the L2-SP regulariser (paper 004)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from fgic.models import create_model, list_models, model_outputs
from fgic.models.convnextv2_scra import SIZES
from fgic.nn.scra import SCRA
from fgic.regularizers import L2SP

ARCH = "convnextv2_atto"


def _rand_init(m: SCRA) -> SCRA:
    m.reset_parameters(zero_init=False)
    nn.init.normal_(m.conv.weight, std=0.3)
    nn.init.normal_(m.conv.bias, std=0.3)
    return m


def _pair(drop_rate: float = 0.0):
    torch.manual_seed(0)
    base = create_model(ARCH, num_classes=5, drop_rate=drop_rate).eval()
    scra = create_model(f"{ARCH}_scra", num_classes=5, drop_rate=drop_rate).eval()
    result = scra.load_state_dict(base.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(k.startswith("scra.") for k in result.missing_keys)
    return base, scra


def test_registered():
    names = list_models("convnextv2")
    for size in SIZES:
        assert f"convnextv2_{size}" in names and f"convnextv2_{size}_scra" in names


def test_scra_shape_gate_range_and_last_map():
    torch.manual_seed(0)
    m = _rand_init(SCRA(6))
    x = torch.randn(2, 6, 5, 7)
    y = m(x)
    assert y.shape == x.shape
    a = m.last_map
    assert a.shape == x.shape and not a.requires_grad
    assert (a > 0).all() and (a < 1).all()
    torch.testing.assert_close(y, a * x)
    torch.testing.assert_close(a, torch.sigmoid(nn.functional.conv2d(x, m.conv.weight, m.conv.bias)))
    # channels interact: changing one input channel moves the gate of another channel
    x2 = x.clone()
    x2[:, 0] += 1.0
    m(x2)
    assert not torch.allclose(m.last_map[:, 1], a[:, 1])


def test_scra_identity_when_gate_saturates():
    m = SCRA(4)
    nn.init.zeros_(m.conv.weight)
    nn.init.constant_(m.conv.bias, 50.0)  # sigmoid(50) == 1 in float32
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(m(x), x, rtol=0, atol=0)


def test_scra_zero_init_is_half_gate():
    x = torch.randn(1, 3, 4, 4)
    m = SCRA(3)
    torch.testing.assert_close(m(x), 0.5 * x)
    assert m.conv.weight.abs().sum() == 0


def test_scra_model_equals_baseline_when_gate_is_one():
    base, scra = _pair()
    nn.init.constant_(scra.scra.conv.bias, 50.0)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(scra(x), base(x), rtol=0, atol=0)
        fb, fs = model_outputs(base, x), model_outputs(scra, x)
    torch.testing.assert_close(fs.feature_map, fb.feature_map)
    assert scra.last_map.shape == (2, scra.body.feature_info[0]["num_chs"], 16, 16)


def test_scra_zero_init_keeps_baseline_function():
    # A constant 0.5 gate is undone by stage 2's leading LayerNorm (up to its eps).
    base, scra = _pair()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(scra(x), base(x), rtol=1e-3, atol=1e-4)
    scra(x).logsumexp(1).sum().backward()  # the zero-initialised gate still gets a gradient
    assert scra.scra.conv.weight.grad.abs().sum() > 0
    # and a non-constant gate does change it
    _rand_init(scra.scra)
    with torch.no_grad():
        assert not torch.allclose(scra(x), base(x), atol=1e-3)


def test_scra_parameter_delta_is_the_1x1_conv():
    base, scra = _pair()
    c = scra.body.feature_info[0]["num_chs"]
    delta = sum(p.numel() for p in scra.parameters()) - sum(p.numel() for p in base.parameters())
    assert delta == sum(p.numel() for p in scra.scra.parameters()) == c * c + c


def test_dropout_only_in_train_mode():
    torch.manual_seed(0)
    m = create_model(f"{ARCH}_scra", num_classes=4, drop_rate=0.45)
    assert m.drop.p == 0.45
    emb = torch.randn(8, m.num_features)
    m.eval()
    torch.testing.assert_close(m.classify(emb), m.classify(emb))
    torch.testing.assert_close(m.classify(emb), m.fc(emb))
    m.train()
    dropped = m.drop(emb)
    frac_zero = (dropped == 0).float().mean().item()
    assert 0.3 < frac_zero < 0.6
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], emb[kept] / (1 - 0.45))


def test_pretrained_file_loads_into_body(tmp_path):
    torch.manual_seed(1)
    src = create_model(ARCH, num_classes=3)
    path = tmp_path / "w.pth"
    torch.save(src.body.state_dict(), path)
    m = create_model(f"{ARCH}_scra", num_classes=7, pretrained=str(path))
    for (n, p), (_, q) in zip(m.body.named_parameters(), src.body.named_parameters()):
        assert torch.equal(p, q), n


def _small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_l2sp_zero_at_anchor_and_closed_form():
    net = _small_net()
    reg = L2SP(net, lam=0.3, exclude=("2.",))
    assert reg.anchored_names == ["0.weight", "0.bias"] and reg.new_names == ["2.weight", "2.bias"]
    assert reg(net).item() == 0.0
    w0 = {n: p.detach().clone() for n, p in net.named_parameters()}
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    sq = (net[0].weight - w0["0.weight"]).pow(2).sum() + (net[0].bias - w0["0.bias"]).pow(2).sum()
    expected = 0.3 * sq  # lam * sum (w - w0)^2, the SCRA paper's form (no 1/2)
    torch.testing.assert_close(reg(net), expected)
    # beta term on the new (excluded) parameters only
    reg_b = L2SP(net, lam=0.3, exclude=("2.",), beta=0.2)
    torch.testing.assert_close(reg_b(net), 0.2 * (net[2].weight.pow(2).sum() + net[2].bias.pow(2).sum()))


def test_l2sp_is_the_papers_penalty_by_hand():
    """Section 3.1.2: lambda * sum_i (w_i - w_i,pretrained)^2 with lambda = 0.01 (section 3.3)."""
    net = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.5, 4.0]]))  # the "pretrained" weights
    reg = L2SP(net, exclude=())  # the default lam is the paper's
    assert reg.lam == 0.01
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 2.0]]))
    # (1.0 - 0.5)^2 + (2.0 - 4.0)^2 = 0.25 + 4 = 4.25; times 0.01
    assert abs(reg(net).item() - 0.0425) < 1e-7


def test_l2sp_gradient():
    net = _small_net()
    reg = L2SP(net, lam=0.07, exclude=())
    w0 = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    reg(net).backward()
    for p, a in zip(net.parameters(), w0):
        torch.testing.assert_close(p.grad, 2 * 0.07 * (p.detach() - a))  # d/dw lam (w - w0)^2


def test_l2sp_default_excludes_new_modules_and_unwraps():
    m = create_model(f"{ARCH}_scra", num_classes=3)
    reg = L2SP(m)
    assert not any(n.startswith(("fc.", "scra.")) for n in reg.anchored_names)
    assert set(reg.new_names) == {"fc.weight", "fc.bias", "scra.conv.weight", "scra.conv.bias"}
    with torch.no_grad():
        m.body.stem[0].weight.add_(1.0)
        m.fc.weight.add_(1.0)
    n = m.body.stem[0].weight.numel()
    wrapper = nn.Module()
    wrapper.module = m  # DDP / Fabric style
    torch.testing.assert_close(reg(wrapper), torch.tensor(0.01 * n))


def test_l2sp_anchor_from_state_dict_and_shape_check():
    net = _small_net()
    zeros = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
    reg = L2SP(net, lam=1.0, anchor=zeros, exclude=())
    torch.testing.assert_close(reg(net), sum(p.pow(2).sum() for p in net.parameters()))
    with pytest.raises(ValueError):
        L2SP(net, anchor={"0.weight": torch.zeros(2, 2)}, exclude=())
