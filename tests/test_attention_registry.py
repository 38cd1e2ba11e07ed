"""fgic.nn.registry: every attention block by name, and a new one (ECA) as one file that models accept."""

import math

import pytest
import torch

from fgic.models import create_model
from fgic.models.multi_attention import attention_maps
from fgic.nn.attention_eca import eca_kernel_size
from fgic.nn.registry import ATTENTIONS, create_attention


@pytest.mark.parametrize("name", ATTENTIONS.list())
def test_every_registered_attention_keeps_the_shape_and_its_last_map(name):
    torch.manual_seed(0)
    x = torch.randn(2, 32, 7, 7)
    m = create_attention(name, 32).eval()
    y = m(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.equal(y, x)
    assert m.last_map is not None and m.last_map.shape[0] == 2 and not m.last_map.requires_grad


def test_eca_kernel_size_and_output_by_hand():
    # eq. (14): |log2(C) / 2 + 1 / 2| made odd, at least 3
    assert [eca_kernel_size(c) for c in (16, 64, 256, 512, 2048)] == [3, 3, 5, 5, 7]
    m = create_attention("eca", 4, kernel_size=3)
    with torch.no_grad():
        m.conv.weight.copy_(torch.tensor([[[0.0, 1.0, 0.0]]]))  # identity: w_c = sigmoid(mean of channel c)
    x = torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 2, 2)
    expect = x * torch.tensor([1 / (1 + math.exp(-c)) for c in range(4)]).view(1, 4, 1, 1)
    assert torch.allclose(m(x), expect)


def test_a_registered_attention_goes_into_every_resnet50_unit_by_name():
    net = create_model("resnet50", 5, layers=(1, 1, 1, 1), width=8, attention="eca")
    net(torch.randn(2, 3, 64, 64))
    assert sorted(attention_maps(net)) == [f"features.layer{i}.0.attn" for i in (1, 2, 3, 4)]
    with pytest.raises(ValueError, match="registered attention"):
        create_model("resnet50", 5, layers=(1, 1, 1, 1), width=8, attention="nope")
