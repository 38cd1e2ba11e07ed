"""Image transform presets, one per paper, built on ``torchvision.transforms.v2``.

``build_transform(preset, train, image_size=None)`` returns an ``ImagePipeline`` that accepts a PIL image
or a uint8 ``(C, H, W)`` tensor (grayscale is repeated to RGB) and returns a float ``(3, H, W)``
tensor normalised with the ImageNet mean and std. The preset's ``torchvision.transforms.v2`` steps
(``.transforms``) run on uint8 (resizing 1 byte per value, before any float conversion), then one fused
float conversion + normalisation; this is 2-3x cheaper per image than the same steps in a ``v2.Compose``
with ``ToImage`` / ``ToDtype`` / ``Normalize`` (measured by ``python -m fgic bench loader``).
All resizes are to a square, as the papers state
("resize to 224x224"). ``image_size`` replaces the paper's network input size for CPU profiles;
the GHOLM pre-crop resize scales with it (510/448).

What each paper states, and what we chose where it is silent:

- ``plain``: the synthetic benchmark; resize to ``image_size`` (kept as is when None), train adds a
  horizontal flip.
- ``acanet`` (Tan & Xu): inputs resized to 224x224; no augmentation is stated, so train adds only a
  horizontal flip (the paper stresses its asymmetric convolutions help with flipped images).
- ``multi_attention`` (Du & Ma): ColorJitter on brightness, contrast, saturation and hue, random
  horizontal flip and random rotation, with no amounts and no input size. We choose 224x224 (the
  torchvision ResNet-50 default the paper builds on), jitter 0.2 / 0.2 / 0.2 / hue 0.05 (mild, since
  colour is itself a class cue for birds and cars) and rotation up to 15 degrees (the SCRA paper's value).
- ``mixed_attention`` (Li et al.): resize to 224x224 and normalise, nothing else stated, so none added.
- ``gholm`` (Zheng & Wang): train resize 510x510, random crop 448, horizontal flip, "adjust vividness and
  brightness" (amounts not given: ColorJitter saturation 0.2, brightness 0.2); test resize 510x510,
  centre crop 448. ``dogs=True``: no crop, resize straight to 448x448 in train and test.
- ``scra`` (Thushara et al.): 224x224; rotation up to 15 degrees and horizontal flip, each applied with
  probability 0.25; ColorJitter brightness, contrast, saturation in [0.75, 1.25], hue in [-0.05, 0.05].
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from fgic.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

GHOLM_RESIZE, GHOLM_CROP = 510, 448


def _resize(size: int | None) -> list:
    return [] if size is None else [v2.Resize((size, size), antialias=True)]


PRESETS = Registry("transform preset")  # name -> fn(train, size, **kw) -> list of v2 steps on uint8
_PRESETS = PRESETS  # the former private name


@PRESETS.register("plain", paper="benchmark")
def _plain(train: bool, size: int | None) -> list:
    """Resize to ``image_size`` (kept as is when None); train adds a horizontal flip."""
    return _resize(size) + ([v2.RandomHorizontalFlip()] if train else [])


@PRESETS.register("acanet", paper="000")
def _acanet(train: bool, size: int | None) -> list:
    """Resize to 224 (or ``image_size``); train adds a horizontal flip."""
    return _resize(size or 224) + ([v2.RandomHorizontalFlip()] if train else [])


@PRESETS.register("multi_attention", paper="001")
def _multi_attention(train: bool, size: int | None) -> list:
    """Resize to 224; train adds colour jitter, a horizontal flip and rotation up to 15 degrees."""
    aug = [
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.05),
        v2.RandomHorizontalFlip(),
        v2.RandomRotation(15),
    ]
    return _resize(size or 224) + (aug if train else [])


@PRESETS.register("mixed_attention", paper="002")
def _mixed_attention(train: bool, size: int | None) -> list:
    """Resize to 224 only (no augmentation is stated)."""
    return _resize(size or 224)


@PRESETS.register("gholm", paper="003")
def _gholm(train: bool, size: int | None, dogs: bool = False) -> list:
    """Resize 510, random crop 448 (test: centre crop), flip, saturation and brightness jitter."""
    crop = size or GHOLM_CROP
    colour = [v2.RandomHorizontalFlip(), v2.ColorJitter(brightness=0.2, saturation=0.2)]
    if dogs:  # Stanford Dogs: no cropping, straight to the crop size
        return _resize(crop) + (colour if train else [])
    pre = round(crop * GHOLM_RESIZE / GHOLM_CROP)  # 510 for 448
    if train:
        return _resize(pre) + [v2.RandomCrop(crop)] + colour
    return _resize(pre) + [v2.CenterCrop(crop)]


@PRESETS.register("scra", paper="004")
def _scra(train: bool, size: int | None) -> list:
    """Resize to 224; train adds rotation and a flip (each with p 0.25) and colour jitter."""
    aug = [
        v2.RandomApply([v2.RandomRotation(15)], p=0.25),
        v2.RandomHorizontalFlip(p=0.25),
        v2.ColorJitter(brightness=(0.75, 1.25), contrast=(0.75, 1.25), saturation=(0.75, 1.25), hue=(-0.05, 0.05)),
    ]
    return _resize(size or 224) + (aug if train else [])


def list_presets(pattern: str = "") -> list[str]:
    """Registered transform preset names containing ``pattern``, sorted."""
    return PRESETS.list(pattern)


def to_uint8_rgb(img) -> torch.Tensor:
    """PIL image or (C, H, W) tensor -> plain uint8 (3, H, W) tensor (grayscale repeated, PIL converted)."""
    if isinstance(img, Image.Image):
        arr = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))  # (H, W, 3)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)
    if not isinstance(img, torch.Tensor) or img.ndim != 3:
        raise TypeError(f"expected a PIL image or a (C, H, W) tensor, got {type(img).__name__}")
    x = img.as_subclass(torch.Tensor)
    if x.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 image tensor, got {x.dtype}")
    return x.expand(3, -1, -1) if x.shape[0] == 1 else x


class ImagePipeline:
    """uint8 RGB conversion -> the preset's v2 steps on uint8 -> fused float conversion + normalisation."""

    def __init__(self, transforms: list, mean: tuple[float, ...], std: tuple[float, ...]):
        self.transforms = list(transforms)
        self.mean = tuple(mean)
        self.std = tuple(std)
        self._shift = torch.tensor(mean).view(3, 1, 1) * 255  # x / 255 - mean = (x - 255 mean) / 255
        self._scale = 1.0 / (torch.tensor(std).view(3, 1, 1) * 255)

    def __call__(self, img) -> torch.Tensor:  # -> (3, S, S) float32
        x = to_uint8_rgb(img)  # (3, H, W) uint8
        for t in self.transforms:
            x = t(x)
        return x.as_subclass(torch.Tensor).to(torch.float32).sub_(self._shift).mul_(self._scale)

    def __repr__(self) -> str:
        steps = "".join(f"\n    {t}" for t in self.transforms)
        return f"ImagePipeline(uint8 RGB{steps}\n    float32 normalise(mean={self.mean}, std={self.std}))"


def build_transform(
    preset: str,
    train: bool,
    image_size: int | None = None,
    dogs: bool = False,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> ImagePipeline:
    """PIL image or uint8 tensor -> normalised float ``(3, S, S)`` tensor, with ``preset``'s augmentation.

    ``image_size`` overrides the paper's input size ``S`` (for ``gholm`` the crop size; the resize
    before it scales by 510/448). ``dogs`` selects the GHOLM Stanford Dogs recipe.
    """
    make_steps = PRESETS[preset]  # KeyError naming the closest presets
    if image_size is not None and (not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 8):
        raise ValueError(f"image_size={image_size!r} must be an integer number of pixels >= 8, or None")
    if dogs and preset != "gholm":
        raise ValueError("dogs=True only applies to the 'gholm' preset")
    steps = make_steps(train, image_size, dogs=True) if dogs else make_steps(train, image_size)
    return ImagePipeline(steps, mean, std)


def denormalize(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Undo the normalisation: ``(..., 3, H, W)`` -> values in [0, 1] (clamped), for display."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * s + m).clamp(0, 1)
