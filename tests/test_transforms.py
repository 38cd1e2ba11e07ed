"""Transform presets: PIL and uint8-tensor inputs, output shape/dtype, determinism, normalisation."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from fgic.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform, denormalize, list_presets

PAPER_SIZE = {"acanet": 224, "multi_attention": 224, "mixed_attention": 224, "gholm": 448, "scra": 224}


def inputs():
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 256, (3, 30, 40), dtype=torch.uint8, generator=g)
    rgb = Image.fromarray(t.permute(1, 2, 0).numpy())
    return {"tensor": t, "pil_rgb": rgb, "pil_gray": rgb.convert("L"), "tensor_gray": t[:1]}


def test_presets_listed():
    assert set(list_presets()) == {"plain", *PAPER_SIZE}


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("preset", sorted(PAPER_SIZE) + ["plain"])
def test_shapes_and_dtype(preset, train):
    f = build_transform(preset, train, image_size=24)
    for name, x in inputs().items():
        y = f(x)
        assert type(y) is torch.Tensor, name  # a plain tensor, not a tv_tensors.Image
        assert y.shape == (3, 24, 24) and y.dtype == torch.float32, name
        assert torch.isfinite(y).all()


@pytest.mark.parametrize("preset", sorted(PAPER_SIZE))
def test_paper_sizes(preset):
    x = inputs()["tensor"]
    s = PAPER_SIZE[preset]
    assert build_transform(preset, False)(x).shape == (3, s, s)
    assert build_transform(preset, True)(x).shape == (3, s, s)


def test_plain_keeps_size_without_image_size():
    assert build_transform("plain", False)(inputs()["tensor"]).shape == (3, 30, 40)


@pytest.mark.parametrize("preset", list_presets())
def test_eval_is_deterministic(preset):
    f = build_transform(preset, False, image_size=24)
    x = inputs()["pil_rgb"]
    torch.manual_seed(1)
    a = f(x)
    torch.manual_seed(2)
    assert torch.equal(a, f(x))


@pytest.mark.parametrize("preset", ["plain", "acanet", "multi_attention", "gholm", "scra"])
def test_train_is_random_but_seeded(preset):
    f = build_transform(preset, True, image_size=24)
    x = inputs()["tensor"]
    torch.manual_seed(0)
    draws = [f(x) for _ in range(12)]
    torch.manual_seed(0)
    assert all(torch.equal(a, f(x)) for a in draws)  # same seed, same augmentation
    assert any(not torch.equal(draws[0], d) for d in draws[1:])


def test_mixed_attention_train_equals_eval():  # the paper states no augmentation
    x = inputs()["tensor"]
    assert torch.equal(build_transform("mixed_attention", True)(x), build_transform("mixed_attention", False)(x))


def test_normalisation_closed_form():
    v = torch.tensor([10, 128, 250], dtype=torch.uint8)
    x = v.view(3, 1, 1).expand(3, 8, 8).clone()
    y = build_transform("plain", False)(x)
    want = (v.float() / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(y, want.view(3, 1, 1).expand_as(y), atol=1e-6)
    assert torch.allclose(denormalize(y), x.float() / 255, atol=1e-6)


def test_plain_flip_is_horizontal():
    x = torch.zeros(3, 8, 8, dtype=torch.uint8)
    x[:, :, :2] = 255  # bright left edge
    f = build_transform("plain", True)
    torch.manual_seed(0)
    lefts = {bool(f(x)[0, 0, 0] > 0) for _ in range(20)}
    assert lefts == {True, False}  # both the original and the mirrored image occur


def _framed(size: int, border: int) -> torch.Tensor:
    x = torch.zeros(3, size, size, dtype=torch.uint8)
    x[0] = 255  # red frame
    x[:, border:-border, border:-border] = torch.tensor([0, 0, 255], dtype=torch.uint8).view(3, 1, 1)
    return x


def test_gholm_eval_is_centre_crop_of_510():
    y = denormalize(build_transform("gholm", False)(_framed(510, 31)))  # (510 - 448) / 2 = 31 px cut away
    assert y.shape == (3, 448, 448)
    assert torch.allclose(y[2], torch.ones(448, 448), atol=1e-6) and y[0].max() < 1e-6  # only blue left


def test_gholm_dogs_resizes_without_crop():
    y = denormalize(build_transform("gholm", False, dogs=True)(_framed(448, 31)))
    assert y.shape == (3, 448, 448) and y[0, 0, 0] > 0.99  # the frame survives: no crop


def test_gholm_scales_crop_with_image_size():
    names = [type(t).__name__ for t in build_transform("gholm", True, image_size=64).transforms]
    assert names.index("Resize") < names.index("RandomCrop")
    resize = build_transform("gholm", True, image_size=64).transforms[names.index("Resize")]
    assert list(resize.size) == [round(64 * 510 / 448)] * 2


def test_scra_parameters_from_paper():
    f = build_transform("scra", True)
    by_name = {type(t).__name__: t for t in f.transforms}
    jitter = by_name["ColorJitter"]
    assert jitter.brightness == jitter.contrast == jitter.saturation == (0.75, 1.25)
    assert jitter.hue == (-0.05, 0.05)
    assert by_name["RandomHorizontalFlip"].p == 0.25 and by_name["RandomApply"].p == 0.25
    assert by_name["RandomApply"].transforms[0].degrees == [-15.0, 15.0]


def test_bad_arguments():
    with pytest.raises(KeyError, match="available"):
        build_transform("nope", True)
    with pytest.raises(ValueError, match="gholm"):
        build_transform("scra", True, dogs=True)
