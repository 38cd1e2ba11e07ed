"""Every registered model built on timm weights takes ``pretrained_tag``; missing weights fail clearly."""

import pytest
import timm
import torch

from fgic.models import create_model, list_models
from fgic.models.pretrained import PretrainedWeightsError
from fgic.models.timm_net import TimmNet


def _timm_body(model) -> TimmNet | None:
    """The TimmNet of a model (itself or GHOLM's shared backbone), or None."""
    for m in (model, getattr(model, "net", None)):
        if isinstance(m, TimmNet):
            return m
    return None


def _tagged_models() -> list[str]:
    out = []
    for name in list_models():
        with torch.device("meta"):  # shapes only: ConvNeXt-V2 Large costs no memory
            model = create_model(name, 3)
        if _timm_body(model) is not None:
            out.append(name)
    return out


TAGGED = _tagged_models()


def test_the_timm_models_are_found():
    assert {"convnext_small", "convnextv2_large", "gholm_convnext_small", "gholm_convnext_atto"} <= set(TAGGED)


@pytest.fixture
def empty_hub_cache(monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("FGIC_ALLOW_DOWNLOAD", "0")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)


@pytest.mark.parametrize("name", TAGGED)
def test_every_timm_model_accepts_a_weights_tag(name, empty_hub_cache):
    with torch.device("meta"):
        base = _timm_body(create_model(name, 3)).arch.split(".")[0]
        tag = timm.list_pretrained(f"{base}.*")[-1].split(".", 1)[1]
        model = create_model(name, 3, pretrained_tag=tag)  # random init, the tag only names the weight set
    assert _timm_body(model).arch == f"{base}.{tag}"
    # asking for those weights without them on disk and with downloads off: a clear error, not a TypeError
    with pytest.raises(PretrainedWeightsError, match="not in the local cache"):
        create_model(name, 3, pretrained=True, pretrained_tag=tag)
    with pytest.raises(PretrainedWeightsError, match="tags of"):
        create_model(name, 3, pretrained=True, pretrained_tag="no_such_tag")


def test_gholm_resnet_backbone_rejects_a_tag_clearly():
    with pytest.raises(ValueError, match="pretrained_tag does not apply"):
        create_model("gholm_resnet18", 3, width=8, pretrained_tag="fb_in22k")


def test_tagged_weights_load_from_the_cache(tmp_path, monkeypatch):
    """The file the Hugging Face cache holds for ``arch.tag`` is what GHOLM's backbone gets."""
    import huggingface_hub
    from safetensors.torch import save_file

    src = timm.create_model("convnext_atto", num_classes=0)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    asked = []

    def fake_cache(repo_id, filename, **kw):
        asked.append(repo_id)
        return str(path) if filename == "model.safetensors" else None

    monkeypatch.setenv("FGIC_ALLOW_DOWNLOAD", "0")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", fake_cache)
    model = create_model("gholm_convnext_atto", 3, pretrained=True, pretrained_tag="d2_in1k")
    assert asked and asked[0] == "timm/convnext_atto.d2_in1k"
    torch.testing.assert_close(model.net.body.stem[0].weight, src.stem[0].weight)
