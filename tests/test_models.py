"""The model registry, the shared protocol, scaled ResNets and pretrained-weight handling."""

import pytest
import torch
import torchvision

from fgic.models import create_model, list_models, model_outputs, reparameterize
from fgic.models.pretrained import PretrainedWeightsError


def test_registry_lists_and_rejects():
    names = list_models()
    assert {"resnet18", "resnet50", "convnext_atto"} <= set(names) and names == sorted(names)
    with pytest.raises(KeyError, match="unknown model"):
        create_model("resnet19", 3)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("resnet18", 0)


@pytest.mark.parametrize("name", ["resnet18", "convnext_atto"])
def test_protocol_stages_compose(name):
    torch.manual_seed(0)
    m = create_model(name, 5, **({"width": 16} if name == "resnet18" else {})).eval()
    x = torch.randn(2, 3, 64, 64)
    out = model_outputs(m, x)
    assert out.feature_map.shape[:2] == (2, m.feature_channels) and out.feature_map.ndim == 4
    assert out.embedding.shape == (2, m.num_features) and out.logits.shape == (2, 5)
    torch.testing.assert_close(out.logits, m(x))


def test_width_64_is_torchvision_and_width_scales_channels():
    full = create_model("resnet18", 10)
    tv = torchvision.models.resnet18(num_classes=10)
    assert sum(p.numel() for p in full.parameters()) == sum(p.numel() for p in tv.parameters())
    narrow = create_model("resnet18", 10, width=16)
    assert narrow.feature_channels == 128 and narrow.features.layer1[0].conv1.out_channels == 16
    assert create_model("resnet50", 10, width=16).feature_channels == 512
    with pytest.raises(ValueError, match="width 64 only"):
        create_model("resnet18", 10, width=16, pretrained=True)


def test_missing_pretrained_weights_raise_never_silently_random(tmp_path, monkeypatch):
    monkeypatch.setenv("FGIC_ALLOW_DOWNLOAD", "0")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(PretrainedWeightsError, match="not in the local cache"):
        create_model("resnet18", 10, pretrained=True)
    with pytest.raises(PretrainedWeightsError, match="not found"):
        create_model("resnet18", 10, pretrained=str(tmp_path / "missing.pth"))


def test_pretrained_from_cache_and_from_file(tmp_path, monkeypatch):
    """Weights in the hub cache or in a file load into the trunk; the classifier is new."""
    src = torchvision.models.resnet18()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    (tmp_path / "checkpoints").mkdir()
    torch.save(src.state_dict(), tmp_path / "checkpoints" / url.rsplit("/", 1)[-1])
    torch.save({"state_dict": src.state_dict()}, tmp_path / "w.pth")
    for pretrained in (True, str(tmp_path / "w.pth")):
        m = create_model("resnet18", 7, pretrained=pretrained)
        torch.testing.assert_close(m.features.conv1.weight, src.conv1.weight)
        assert m.fc.out_features == 7
    torch.save({"nothing": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(PretrainedWeightsError, match="no parameter name"):
        create_model("resnet18", 7, pretrained=str(tmp_path / "bad.pth"))


def test_reparameterize_counts_fusable_blocks():
    m = reparameterize(create_model("resnet18", 3, width=16))
    assert m.num_reparameterized == 0 and not m.training
