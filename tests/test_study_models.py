"""The cross-paper study's backbone (fgic.models.study) and its registered modules (fgic/study_modules/)."""

import pkgutil

import pytest
import torch
import torch.nn as nn
import torchvision

import fgic.study_modules
from fgic.models import create_model, reparameterize
from fgic.models.multi_attention import attention_maps
from fgic.models.study import (
    STUDY_MODULES,
    StudyResNet,
    describe_study_modules,
    list_study_modules,
    unit_channels,
)
from fgic.nn.acb import ACCB
from fgic.nn.attention_csca import ChannelSpatialAttention
from fgic.nn.attention_mixed import MixedAttention
from fgic.nn.attention_se import SEChannelAttention
from fgic.nn.attention_spatial import CBAMSpatialAttention, SESpatialAttention
from fgic.nn.cam_attention import CAMAttention
from fgic.nn.fcsa import FCSA
from fgic.nn.patchify import Patchify
from fgic.nn.scra import SCRA
from fgic.study_modules.fcsa import fcsa_unit_conv
from tests.test_acanet import count, randomize_bn

REQUIRED = {"none", "accb", "fcsa", "patchify", "cam_head", "ca", "sa", "csca", "se", "softmax_sa", "ma", "scra"}
MODULES = list_study_modules()
# tiny networks: ResNet-18 at width 8 (2, 2, 2, 2) and ResNet-50 at width 8 with one unit per stage
ARCHS = {"study_resnet18": {"width": 8}, "study_resnet50": {"width": 8, "layers": (1, 1, 1, 1)}}
K = 5


def build(name: str, module: str, seed: int = 0, **kw) -> StudyResNet:
    torch.manual_seed(seed)
    return create_model(name, K, module=module, **{**ARCHS[name], **kw})


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_has_every_module_with_its_paper_and_place():
    assert REQUIRED <= set(MODULES) and MODULES == sorted(MODULES)
    rows = {r["name"]: r for r in describe_study_modules()}
    for name in MODULES:
        assert rows[name]["paper"] and rows[name]["where"] and rows[name]["description"], name
    assert {rows[n]["paper"] for n in ("accb", "fcsa", "patchify")} == {"000"}
    assert {rows[n]["paper"] for n in ("ca", "sa", "csca", "cam_head")} == {"001"}
    assert {rows[n]["paper"] for n in ("se", "softmax_sa", "ma")} == {"002"} and rows["scra"]["paper"] == "004"
    assert "gholm" not in " ".join(MODULES)


def test_every_file_of_the_package_is_found_and_registers_a_module():
    files = {m.name for m in pkgutil.iter_modules(fgic.study_modules.__path__) if not m.name.startswith("_")}
    owners = {STUDY_MODULES.get(n).__module__.rsplit(".", 1)[-1] for n in MODULES}
    assert files == owners  # one file per module: a file that registers nothing (or is not found) fails here


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("module", MODULES)
def test_every_module_builds_classifies_and_trains(name, module):
    model = build(name, module).train()
    base = build(name, "none")
    x = torch.randn(2, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (2, K) and torch.isfinite(logits).all()
    assert model.forward_features(x).shape == (2, model.feature_channels, 2, 2)
    nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    assert all(p.grad is not None for p in model.parameters()), [n for n, p in model.named_parameters()
                                                                 if p.grad is None]
    new = [p for n, p in model.named_parameters() if n in model.new_param_prefixes[1:]]
    assert len(new) == len(model.new_param_prefixes) - 1
    assert model.study_module == module and (not new or any(p.grad.abs().sum() > 0 for p in new))
    if module == "none":
        assert n_params(model) == n_params(base) and model.new_param_prefixes == ("fc.",)
    elif STUDY_MODULES.entry(module).extra.get("adds_parameters", True):
        assert n_params(model) != n_params(base) and new
    else:  # cam_head: the same parameters (the CAM uses the classifier's weights), another function
        assert n_params(model) == n_params(base)
        model.load_state_dict({("fc." + k if k.startswith("fc.") else k): v for k, v in base.state_dict().items()})
        model.eval()
        base.eval()
        assert not torch.allclose(model(x), base(x), atol=1e-4)


# what each module puts where: (module type, how many in ResNet-18 (2, 2, 2, 2), in ResNet-50 (1, 1, 1, 1))
PLACED = {
    "accb": (ACCB, 16, 4),  # every 3x3 conv of every unit: 2 per BasicBlock, 1 per Bottleneck
    "fcsa": (FCSA, 2, 1),  # every unit of layer4
    "patchify": (Patchify, 3, 3),  # the shortcut of the first unit of layer2..4
    "cam_head": (CAMAttention, 1, 1),
    "ca": (SEChannelAttention, 8, 4),  # one per unit
    "sa": (CBAMSpatialAttention, 8, 4),
    "csca": (ChannelSpatialAttention, 8, 4),
    "se": (SEChannelAttention, 1, 1),  # one on top
    "softmax_sa": (SESpatialAttention, 1, 1),
    "ma": (MixedAttention, 1, 1),
    "scra": (SCRA, 1, 1),
}


@pytest.mark.parametrize("module", sorted(PLACED))
def test_modules_sit_where_their_paper_puts_them(module):
    cls, n18, n50 = PLACED[module]
    m18, m50 = build("study_resnet18", module), build("study_resnet50", module)
    assert (count(m18, cls), count(m50, cls)) == (n18, n50)
    for m in (m18, m50):
        if module in ("ca", "sa", "csca"):
            assert all(isinstance(u.attn, cls) for _, u in m.units())
            assert [getattr(u.attn, "channels", unit_channels(u)) for _, u in m.units()] == [
                unit_channels(u) for _, u in m.units()]
            assert unit_channels(list(m.layer4)[-1]) == m.feature_channels
        if module in ("se", "softmax_sa", "ma"):
            assert isinstance(m.after["layer4"], cls) and m.after["layer4"].channels == m.feature_channels
        if module == "scra":
            assert isinstance(m.after["layer1"], cls) and m.after["layer1"].channels == m.stage_channels[0]
        if module == "fcsa":
            assert all(isinstance(u.conv1 if m.block == "basic" else u.conv2, (FCSA, nn.Sequential))
                       for _, u in m.units("layer4"))
            assert count(m.layer3, FCSA) == 0
        if module == "patchify":
            assert count(m.layer1, Patchify) == 0
        if module == "cam_head":
            m.reset_classifier(3)
            assert isinstance(m.fc, CAMAttention) and m(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    if module in ("ca", "sa", "csca", "se", "softmax_sa", "ma", "scra", "cam_head"):
        m18(torch.randn(2, 3, 64, 64))
        kept = [m for m in m18.modules() if isinstance(m, cls) and getattr(m, "last_map", None) is not None]
        assert len(kept) == n18  # every block keeps its last map for heatmaps
        if module in ("ca", "sa", "csca"):
            assert len(attention_maps(m18)) == n18


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("module", MODULES)
def test_output_stride_8_gives_8x8_maps_at_64px(name, module):
    model = build(name, module, output_stride=8).eval()
    x = torch.randn(2, 3, 64, 64)
    assert model.forward_features(x).shape[-2:] == (8, 8)
    assert model(x).shape == (2, K)


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("stride", [None, 8])
def test_accb_fused_equals_unfused_in_eval_mode(name, stride):
    model = build(name, "accb", **({"output_stride": stride} if stride else {}))
    with torch.no_grad():
        randomize_bn(model)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        reparameterize(model)
        after = model(x)
    assert model.num_reparameterized == PLACED["accb"][1 if name == "study_resnet18" else 2]
    assert all(m.deployed for m in model.modules() if isinstance(m, ACCB))
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 3) for m in model.modules())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stride,size", [(2, 8), (2, 7), (1, 6)])
def test_fcsa_unit_conv_computes_the_strided_fcsa(stride, size):
    torch.manual_seed(0)
    ref = FCSA(16, 16, stride, num_heads=4, kernel_att=3)
    with torch.no_grad():
        ref.rel_pos.normal_()
        ref.alpha.fill_(0.7)
        ref.beta.fill_(0.3)
    ours = fcsa_unit_conv(16, 16, stride, num_heads=4, kernel_att=3)
    (ours[0] if stride > 1 else ours).load_state_dict(ref.state_dict())
    x = torch.randn(2, 16, size, size)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def test_width_64_none_has_torchvision_state_dict_and_function():
    ours = create_model("study_resnet18", 1000)
    tv = torchvision.models.resnet18()
    sd_ours, sd_tv = ours.state_dict(), tv.state_dict()
    assert list(sd_ours) == list(sd_tv)
    assert all(sd_ours[k].shape == v.shape for k, v in sd_tv.items())
    ours.load_state_dict(sd_tv)  # strict
    ours.eval()
    tv.eval()
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(ours(x), tv(x))
    r50 = create_model("study_resnet50", 1000).state_dict()
    tv50 = torchvision.models.resnet50().state_dict()
    assert set(r50) == set(tv50) and all(r50[k].shape == v.shape for k, v in tv50.items())


def test_pretrained_file_fills_the_trunk_and_leaves_the_module_new(tmp_path):
    src = torchvision.models.resnet18()
    torch.save(src.state_dict(), tmp_path / "r18.pth")
    model = create_model("study_resnet18", 7, pretrained=str(tmp_path / "r18.pth"), module="se")
    torch.testing.assert_close(model.layer3[1].conv2.weight, src.layer3[1].conv2.weight)
    assert model.fc.out_features == 7 and any(n.startswith("after.layer4.") for n in model.new_param_prefixes)
    with pytest.raises(ValueError, match="width=64"):
        create_model("study_resnet18", 7, pretrained=True, width=8)


def test_unknown_module_names_every_registered_one():
    with pytest.raises(KeyError) as err:
        create_model("study_resnet18", K, module="cbam", width=8)
    msg = str(err.value)
    assert "cbam" in msg and all(name in msg for name in MODULES)
    with pytest.raises(TypeError, match="reduction"):
        create_model("study_resnet18", K, module="sa", width=8, reduction=4)  # sa takes no reduction


def test_adding_a_module_is_one_registered_function(monkeypatch):
    monkeypatch.setattr(STUDY_MODULES, "_entries", dict(STUDY_MODULES._entries))  # undone after the test

    @STUDY_MODULES.register("mix_after_layer2", paper="test", where="after layer2")
    def mix_after_layer2(net, bias=True):
        """A 1x1 conv on the output of stage 2."""
        c = net.stage_channels[1]
        net.after["layer2"] = nn.Conv2d(c, c, 1, bias=bias)

    assert "mix_after_layer2" in list_study_modules()
    base, model = build("study_resnet18", "none"), build("study_resnet18", "mix_after_layer2", bias=False)
    assert n_params(model) - n_params(base) == 16 * 16
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, K)
    assert model.study_module_kw == {"bias": False}


def test_cli_lists_the_study_modules_with_their_papers(capsys):
    from fgic.__main__ import main

    assert main(["list", "study-modules"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in MODULES) and "004" in out
