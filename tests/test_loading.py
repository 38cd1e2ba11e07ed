"""The input pipeline: JPEG decoding, the uint8 transform pipeline, loader settings, the resized cache."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from fgic.data.base import ImageListDataset, load_rgb, read_rgb
from fgic.data.loading import ResizedCache, available_cores, make_loader, resolve_workers
from fgic.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform, list_presets

CUB100 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cub100"


def _images(tmp_path, n=5, size=(40, 30)):
    g = np.random.default_rng(0)
    paths = []
    for i in range(n):
        arr = g.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        p = tmp_path / f"img{i}.jpg"
        Image.fromarray(arr).save(p, quality=95)
        paths.append(p)
    return paths


def test_read_rgb_decodes_jpegs_like_pil(tmp_path):
    for p in _images(tmp_path):
        a = read_rgb(p)
        b = torch.from_numpy(np.array(load_rgb(p))).permute(2, 0, 1)
        assert a.dtype == torch.uint8 and a.shape == b.shape == (3, 30, 40)
        assert (a.int() - b.int()).abs().float().mean() < 1.0  # both libjpeg; IDCT rounding may differ


def test_read_rgb_grayscale_jpeg_and_alpha_png(tmp_path):
    Image.new("L", (8, 6), 200).save(tmp_path / "g.jpg")
    g = read_rgb(tmp_path / "g.jpg")
    assert g.shape == (3, 6, 8) and (g.int() - 200).abs().max() <= 1
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "a.png")  # fully transparent red
    assert torch.equal(read_rgb(tmp_path / "a.png"), torch.full((3, 4, 4), 255, dtype=torch.uint8))  # on white


def _reference(preset, size):  # the former v2.Compose of build_transform
    from fgic.data.transforms import _PRESETS

    steps = _PRESETS[preset](False, size)
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RGB(),
            *steps,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


@pytest.mark.parametrize("preset", list_presets())
def test_pipeline_equals_the_v2_compose(preset):
    x = torch.randint(0, 256, (3, 37, 29), dtype=torch.uint8)
    for img in (x, Image.fromarray(x.permute(1, 2, 0).numpy())):
        got, want = build_transform(preset, False, image_size=24)(img), _reference(preset, 24)(img)
        assert type(got) is torch.Tensor
        torch.testing.assert_close(got, want.as_subclass(torch.Tensor), atol=1e-5, rtol=1e-5)


def test_dataset_uses_the_fast_decoder_only_for_pipelines(tmp_path):
    paths = _images(tmp_path, n=2)
    samples = [(str(p), i) for i, p in enumerate(paths)]
    fast = ImageListDataset(samples, ["a", "b"], transform=build_transform("plain", False, image_size=16))
    x, y = fast[1]
    assert x.shape == (3, 16, 16) and y == 1
    plain = ImageListDataset(samples, ["a", "b"], transform=lambda im: im.size)  # a PIL transform still gets PIL
    assert plain[0][0] == (40, 30)


def test_workers_from_the_cores():
    assert resolve_workers("auto") == max(0, available_cores() - 1) == resolve_workers(-1)
    assert resolve_workers(1) == 1
    assert resolve_workers(1000) == available_cores()  # never more workers than cores (issue 13)
    with pytest.raises(ValueError, match="num_workers"):
        resolve_workers(-2)


def test_make_loader_settings():
    ds = torch.utils.data.TensorDataset(torch.arange(10.0))
    dl = make_loader(ds, 4, num_workers=1)
    assert dl.num_workers == 1 and dl.persistent_workers and not dl.pin_memory
    assert sorted(torch.cat([b[0] for b in dl]).tolist()) == list(range(10))
    assert sorted(torch.cat([b[0] for b in dl]).tolist()) == list(range(10))  # a second epoch, same workers
    dl0 = make_loader(ds, 4, num_workers=0, shuffle=True)
    assert dl0.num_workers == 0 and not dl0.persistent_workers


def test_resized_cache(tmp_path):
    paths = _images(tmp_path, n=3)
    ds = ImageListDataset([(str(p), i % 2) for i, p in enumerate(paths)], ["a", "b"])
    cache = ResizedCache(ds, 16, tmp_path / "cache")
    assert cache.nbytes == 3 * 3 * 16 * 16 == cache.path.stat().st_size  # the documented disk cost
    x, y = cache[2]
    assert x.dtype == torch.uint8 and x.shape == (3, 16, 16) and y == 0
    want = v2.functional.resize(read_rgb(paths[2]), [16, 16], antialias=True)
    assert torch.equal(x, want)
    mtime = cache.path.stat().st_mtime_ns
    again = ResizedCache(ds, 16, tmp_path / "cache", transform=build_transform("plain", False, image_size=16))
    assert again.path == cache.path and again.path.stat().st_mtime_ns == mtime  # reused, not rebuilt
    torch.testing.assert_close(again[2][0], build_transform("plain", False, image_size=16)(want))


@pytest.mark.skipif(not CUB100.is_dir(), reason="cub100 subset not present")
def test_cub_jpegs_decode_like_pil():
    paths = sorted((CUB100 / "CUB_200_2011" / "images").glob("*/*.jpg"))[:3]
    for p in paths:
        a, b = read_rgb(p), torch.from_numpy(np.array(load_rgb(p))).permute(2, 0, 1)
        assert a.shape == b.shape and (a.int() - b.int()).abs().float().mean() < 1.0
