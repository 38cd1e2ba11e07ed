"""Attention blocks of seeds 001/002 (CA, SA-Ours, CBAM SA, CSCA, MA-Ours, FCN head) and their networks."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models as tvm

from fgic.models import create_model, model_outputs
from fgic.models.mixed_attention import attention_param_prefixes, paper_param_groups, vgg16bn_trunk
from fgic.models.multi_attention import ATTENTION_TYPES, attention_maps, attention_resnet_trunk
from fgic.models.pretrained import PretrainedWeightsError
from fgic.nn.attention_csca import ChannelSpatialAttention
from fgic.nn.attention_mixed import MixedAttention
from fgic.nn.attention_se import SEChannelAttention
from fgic.nn.attention_spatial import CBAMSpatialAttention, SESpatialAttention
from fgic.nn.cam_attention import CAMAttention
from fgic.nn.fcn_head import FCNHead

C = 32


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _x(b=2, c=C, h=6, w=5):
    return torch.randn(b, c, h, w)


def _ones_map(module):
    """Force ``module.attention_map`` to a map of ones, shaped like the real one."""
    real = module.attention_map
    module.attention_map = lambda x: torch.ones_like(real(x))


def _se_weights(excite, x, gate):
    z = F.linear(F.relu(F.linear(x.mean((2, 3)), excite.fc1.weight[:, :, 0, 0], excite.fc1.bias)),
                 excite.fc2.weight[:, :, 0, 0], excite.fc2.bias)  # (B, C)
    return torch.sigmoid(z) if gate == "sigmoid" else torch.softmax(z, 1)


def test_ca_is_se_closed_form():
    m, x = SEChannelAttention(C), _x()
    s = _se_weights(m.excite, x, "sigmoid")[:, :, None, None]
    torch.testing.assert_close(m(x), x * s)
    assert m.last_map.shape == (2, C, 1, 1) and not m.last_map.requires_grad
    assert ((m.last_map > 0) & (m.last_map < 1)).all()
    assert m.excite.fc1.out_channels == max(C // 16, 4)


def test_sa_ours_weights_sum_to_one_and_map_is_weighted_channel_sum():
    m, x = SESpatialAttention(C), _x()
    y = m(x)
    s = m.last_channel_weights  # (B, C, 1, 1)
    torch.testing.assert_close(s.sum(1), torch.ones(2, 1, 1))
    torch.testing.assert_close(s[:, :, 0, 0], _se_weights(m.excite, x, "softmax"))
    v = torch.einsum("bc,bchw->bhw", s[:, :, 0, 0], x)[:, None]  # eqs. (2) + F_flat
    torch.testing.assert_close(m.last_map, v)
    assert m.last_map.shape == (2, 1, 6, 5)
    torch.testing.assert_close(y, x * v)  # eq. (3)


def test_sa_ours_map_equals_shared_channel_when_channels_are_equal():
    # a convex combination of identical channels is that channel: V = u, output = u * u per channel
    u = torch.randn(2, 1, 4, 4)
    m = SESpatialAttention(C)
    y = m(u.expand(2, C, 4, 4).contiguous())
    torch.testing.assert_close(m.last_map, u)
    torch.testing.assert_close(y, (u * u).expand(2, C, 4, 4))


def test_cbam_spatial_closed_form():
    m, x = CBAMSpatialAttention(7), _x()
    ref = torch.sigmoid(F.conv2d(torch.cat([x.mean(1, True), x.amax(1, True)], 1), m.conv.weight, m.conv.bias,
                                 padding=3))
    torch.testing.assert_close(m(x), x * ref)
    torch.testing.assert_close(m.last_map, ref)
    nn.init.zeros_(m.conv.weight)
    nn.init.zeros_(m.conv.bias)
    m(x)
    torch.testing.assert_close(m.last_map, torch.full((2, 1, 6, 5), 0.5))


def test_csca_is_channel_then_spatial():
    m, x = ChannelSpatialAttention(C), _x()
    y = m(x)
    x1 = x * _se_weights(m.channel.excite, x, "sigmoid")[:, :, None, None]
    torch.testing.assert_close(y, x1 * m.spatial.attention_map(x1))
    assert m.last_map.shape == (2, 1, 6, 5) and m.last_channel_map.shape == (2, C, 1, 1)


@pytest.mark.parametrize("make", [lambda: SEChannelAttention(C), lambda: SESpatialAttention(C),
                                  lambda: CBAMSpatialAttention(7)])
def test_unit_map_gives_identity(make):
    m, x = make(), _x()
    _ones_map(m)
    torch.testing.assert_close(m(x), x)


def test_csca_and_ma_with_unit_maps_are_identity():
    x = _x()
    csca = ChannelSpatialAttention(C)
    _ones_map(csca.channel)
    _ones_map(csca.spatial)
    torch.testing.assert_close(csca(x), x)
    ma = MixedAttention(C)  # merge initialised to the branch mean
    _ones_map(ma.ca)
    _ones_map(ma.sa)
    torch.testing.assert_close(ma(x), x)


def test_ma_mean_merge_and_shapes():
    x = _x()
    ma = MixedAttention(C)
    y = ma(x)
    assert y.shape == x.shape and ma.merge.in_channels == 2 * C and ma.merge.kernel_size == (1, 1)
    torch.testing.assert_close(y, (ma.ca(x) + ma.sa(x)) / 2)
    torch.testing.assert_close(ma.last_map, ma.sa.last_map)
    rnd = MixedAttention(C, merge_init="random")
    x_cs = torch.cat([rnd.ca(x), rnd.sa(x)], 1)  # eq. (4)
    torch.testing.assert_close(rnd(x), F.conv2d(x_cs, rnd.merge.weight, rnd.merge.bias))


def test_fcn_head_mean_of_cam_equals_gap_fc():
    head, fmap = FCNHead(C, 7), _x()
    cam = head.cam(fmap)
    assert cam.shape == (2, 7, 6, 5)
    fc = nn.Linear(C, 7)
    fc.weight.data.copy_(head.conv.weight[:, :, 0, 0])
    fc.bias.data.copy_(head.conv.bias)
    gap = fmap.mean((2, 3))
    torch.testing.assert_close(head(fmap), fc(gap))
    torch.testing.assert_close(cam.mean((2, 3)), fc(gap))
    torch.testing.assert_close(head(gap), fc(gap))


@pytest.mark.parametrize("make", [lambda: SEChannelAttention(C), lambda: SESpatialAttention(C),
                                  lambda: CBAMSpatialAttention(7), lambda: ChannelSpatialAttention(C),
                                  lambda: MixedAttention(C), lambda: FCNHead(C, 5)])
def test_gradients_reach_input_and_every_parameter(make):
    m, x = make(), _x().requires_grad_()
    m(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- networks (tiny trunks, 32 px)
SMALL_RN = dict(layers=(1, 1, 1, 1), width=8)
SEED1 = ["resnet50", "resnet50_fcn_head", "resnet50_ca_units", "resnet50_sa_units", "resnet50_csca_units"]
SEED2 = [f"{a}_{k}top" for a in ("vgg16_bn", "resnet50") for k in ("", "ca_", "sa_", "ma_")]


def _small(name, k=5):
    kw = dict(width=32) if name.startswith("vgg") else SMALL_RN  # both end in 256 channels
    return create_model(name, k, **kw)


@pytest.mark.parametrize("name", SEED1 + SEED2)
def test_network_forward_backward(name):
    model, x = _small(name), torch.randn(2, 3, 32, 32)
    out = model_outputs(model, x)
    assert out.feature_map.shape[:2] == (2, model.feature_channels) == (2, 256)
    assert out.embedding.shape == (2, model.num_features) and out.logits.shape == (2, 5)
    torch.testing.assert_close(model(x), out.logits)
    F.cross_entropy(out.logits, torch.tensor([0, 3])).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_seed2_head_is_fc512_bn_elu():
    model = _small("resnet50_ma_top")
    assert model.num_features == 512
    kinds = [type(m) for m in model.pre_logits]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ELU] and model.pre_logits[0].in_features == 256


@pytest.mark.parametrize("name", ["resnet50_fcn_head", "resnet50_ca_units"])
def test_seed1_cam_mean_is_logits(name):
    model, x = _small(name).eval(), torch.randn(2, 3, 64, 64)
    cam = model.cam(x)
    assert cam.shape == (2, 5, 2, 2)
    torch.testing.assert_close(cam.mean((2, 3)), model(x))


def test_seed1_attention_in_every_block_and_maps():
    model = _small("resnet50_csca_units")
    model(torch.randn(2, 3, 32, 32))
    maps = attention_maps(model)
    assert list(maps) == [f"features.layer{i}.0.attn" for i in range(1, 5)]
    assert all(v.shape[:2] == (2, 1) for v in maps.values())
    assert attention_maps(_small("resnet50")) == {}


def test_seed1_attention_changes_output_only_through_its_maps():
    plain, ca = _small("resnet50").eval(), _small("resnet50_ca_units").eval()
    missing = ca.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(".attn." in k for k in missing)
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(ca(x), plain(x))
    for m in ca.modules():
        if isinstance(m, SEChannelAttention):
            _ones_map(m)
    torch.testing.assert_close(ca(x), plain(x))


def test_trunk_matches_torchvision_and_loads_weight_files(tmp_path):
    ref = tvm.ResNet(tvm.resnet.Bottleneck, [1, 1, 1, 1]).eval()
    path = tmp_path / "rn.pth"
    torch.save(ref.state_dict(), path)
    trunk = attention_resnet_trunk((1, 1, 1, 1), 64, None, pretrained=str(path)).eval()
    x = torch.randn(1, 3, 32, 32)
    ref_feats = nn.Sequential(*list(ref.children())[:-2])(x)
    torch.testing.assert_close(trunk(x), ref_feats)
    model = create_model("resnet50_csca_units", 3, pretrained=str(path), layers=(1, 1, 1, 1))  # attention stays new
    torch.testing.assert_close(model.features.conv1.weight, ref.conv1.weight)
    with pytest.raises(PretrainedWeightsError):
        create_model("resnet50_ca_units", 3, pretrained=str(path), layers=(1, 1, 2, 1))
    with pytest.raises(ValueError):
        create_model("resnet50_ca_units", 3, pretrained=True, width=16)


def test_vgg_trunk_loads_full_vgg_state_dict(tmp_path):
    src = vgg16bn_trunk(width=8).eval()
    sd = {f"features.{k}": v for k, v in src.state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(3, 3)
    torch.save(sd, tmp_path / "vgg.pth")
    dst = vgg16bn_trunk(width=8, pretrained=str(tmp_path / "vgg.pth")).eval()
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(dst(x), src(x))
    assert sum(isinstance(m, nn.Conv2d) for m in dst) == 13
    assert sum(isinstance(m, nn.MaxPool2d) for m in dst) == 5


@pytest.mark.parametrize("name", SEED1 + SEED2)
def test_attention_prefixes_select_exactly_the_attention_params(name):
    model = _small(name)
    prefixes = attention_param_prefixes(model)
    chosen = {n for n, _ in model.named_parameters() if n.startswith(prefixes)} if prefixes else set()
    expected = set()
    for mname, m in model.named_modules():
        if isinstance(m, ATTENTION_TYPES):
            expected |= {f"{mname}.{n}" for n, _ in m.named_parameters()}
    assert chosen == expected
    has_attention = name not in ("resnet50_top", "vgg16_bn_top", "resnet50", "resnet50_fcn_head")
    assert bool(chosen) == has_attention
    if name in SEED2 and has_attention:
        assert prefixes == (model.ATTENTION_PREFIX,) == ("attention.",)
        assert paper_param_groups(model) == {"attention.": 0.1, "": 0.01}


def test_fgic_cam_uses_the_fcn_head_maps():
    """fgic.cam.cam on an FCN network equals its head's own per-class map of the true class."""
    from fgic.cam import cam, normalize_maps

    torch.manual_seed(0)
    net = create_model("resnet50_fcn_head", 3, layers=(1, 1, 1, 1), width=8).eval()
    x, classes = torch.randn(2, 3, 64, 64), torch.tensor([0, 2])
    with torch.no_grad():
        own = net.cam(x)[torch.arange(2), classes]  # (B, h, w)
        expected = normalize_maps(torch.nn.functional.interpolate(own[:, None], size=(64, 64), mode="bilinear")[:, 0])
    torch.testing.assert_close(cam(net, x, classes), expected)


# ---------------------------------------------------------------- seed 001: FCN head vs CAM attention (issue 10.12)
def test_plain_fcn_head_equals_gap_plus_fc():
    """A mean-pooled 1x1-conv FCN head is GAP + FC with the same weights: the same function, numerically."""
    torch.manual_seed(0)
    fmap = torch.randn(3, 16, 4, 4)  # (B, C, h, w)
    head, fc = FCNHead(16, 5), nn.Linear(16, 5)
    with torch.no_grad():
        head.conv.weight.copy_(fc.weight[:, :, None, None])
        head.conv.bias.copy_(fc.bias)
    torch.testing.assert_close(head(fmap), fc(fmap.mean((2, 3))))
    plain, fcn = _small("resnet50").eval(), _small("resnet50_fcn_head").eval()
    sd = plain.state_dict()
    sd["fc.conv.weight"], sd["fc.conv.bias"] = sd.pop("fc.weight")[:, :, None, None], sd.pop("fc.bias")
    fcn.load_state_dict(sd)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(fcn(x), plain(x))


def test_cam_attention_differs_from_gap_fc_and_its_cam_is_the_weighted_channel_sum():
    torch.manual_seed(0)
    head = CAMAttention(16, 7, top_k=3)
    fmap = torch.randn(2, 16, 4, 4)  # (B, C, h, w)
    w, b = head.fc.weight, head.fc.bias
    expected_cam = (w[None, :, :, None, None] * fmap[:, None]).sum(2) + b[None, :, None, None]  # (B, K, h, w)
    torch.testing.assert_close(head.cam(fmap), expected_cam)
    a = head.attention(fmap).detach()  # (B, h, w)
    assert a.shape == (2, 4, 4) and float(a.min()) == 0.0 and float(a.amax((1, 2)).min()) == pytest.approx(1.0)
    # A is the normalised mean CAM of the 3 classes with the highest FCN logits
    top = expected_cam.mean((2, 3)).topk(3, 1).indices
    m = torch.stack([expected_cam[i, top[i]].mean(0) for i in range(2)])
    torch.testing.assert_close(a, (m - m.amin((1, 2), True)) / (m.amax((1, 2), True) - m.amin((1, 2), True)))
    gap_fc = head.fc(fmap.mean((2, 3)))
    out = head(fmap)
    assert not torch.allclose(out, gap_fc, atol=1e-3)  # not the FCN / GAP + FC function
    torch.testing.assert_close(out, head.fc((fmap * (1 + a[:, None])).mean((2, 3))))
    flat = fmap.mean((2, 3), keepdim=True).expand_as(fmap)  # a spatially constant map: A = 0, GAP + FC
    torch.testing.assert_close(head(flat), head.fc(flat.mean((2, 3))))


def test_cam_resnet50_uses_the_cam_attention_head():
    model, x = _small("resnet50_cam_head").eval(), torch.randn(2, 3, 64, 64)
    assert isinstance(model.fc, CAMAttention)
    fmap = model.forward_features(x)
    torch.testing.assert_close(model.cam(x), model.fc.cam(fmap))
    torch.testing.assert_close(model(x), model.fc(fmap))
    plain = _small("resnet50").eval()  # same trunk and classifier weights, plain GAP + FC
    sd = {k.replace("fc.fc.", "fc."): v for k, v in model.state_dict().items()}
    plain.load_state_dict(sd)
    assert not torch.allclose(model(x), plain(x), atol=1e-4)
    out = model_outputs(model.train(), x)
    F.cross_entropy(out.logits, torch.tensor([0, 3])).backward()
    assert all(p.grad is not None for p in model.parameters())
