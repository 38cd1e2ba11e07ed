"""fgic.nn.stride: the last downsampling steps at stride 1, on every family the default profile uses."""

import pytest
import torch

from fgic.models import create_model
from fgic.nn.stride import output_stride, set_output_stride

FAMILIES = [
    ("resnet18", {"width": 8}),
    ("resnet50_csca_units", {"layers": [1, 1, 1, 1], "width": 8}),
    ("resnet50_cam_head", {"layers": [1, 1, 1, 1], "width": 8}),
    ("vgg16_bn_ma_top", {"width": 8}),
    ("gholm_resnet18", {"width": 8}),
    ("convnextv2_atto_scra", {"dims": [8, 16, 32, 64], "depths": [1, 1, 1, 1], "patch_size": 2}),
]


@pytest.mark.parametrize("name,kw", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_output_stride_8_gives_8x8_maps_at_64px_and_keeps_the_weights(name, kw):
    torch.manual_seed(0)
    plain = create_model(name, 5, **kw)
    torch.manual_seed(0)
    reduced = create_model(name, 5, output_stride=8, **kw)
    assert output_stride(plain) == 32 and output_stride(reduced) == 8
    assert plain.state_dict().keys() == reduced.state_dict().keys()  # same parameters, same names
    for k, v in plain.state_dict().items():
        assert torch.equal(v, reduced.state_dict()[k]), k
    x = torch.randn(2, 3, 64, 64)
    reduced.eval()
    fmap = reduced.forward_features(x)
    assert fmap.shape[-2:] == (8, 8)
    logits = reduced(x)
    logits = logits[0] if isinstance(logits, tuple) else logits
    assert logits.shape == (2, 5)


def test_output_stride_16_changes_only_the_last_step():
    m = create_model("resnet18", 3, width=8, output_stride=16)
    assert m.forward_features(torch.zeros(1, 3, 64, 64)).shape[-1] == 4
    trunk = dict(m.named_modules())
    strides = {n: mod.stride for n, mod in trunk.items() if isinstance(mod, torch.nn.Conv2d) and "downsample" in n}
    assert sorted(strides.values()) == [(1, 1), (2, 2), (2, 2)]  # layer2 and layer3 shortcuts keep stride 2


def test_impossible_output_strides_are_refused_with_the_reason():
    m = create_model("resnet18", 3, width=8)
    with pytest.raises(ValueError, match="power of 2"):
        set_output_stride(m, 12)
    with pytest.raises(ValueError, match="at most"):
        set_output_stride(m, 64)
    acanet = create_model("acanet18", 3, width=8, fcsa_stages=[4])  # FCSA strides inside its own forward
    with pytest.raises(ValueError, match="not all in Conv2d"):
        set_output_stride(acanet, 8)
    assert output_stride(acanet) == 32  # left as it was
    assert acanet(torch.zeros(1, 3, 64, 64)).shape == (1, 3)
