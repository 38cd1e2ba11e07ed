"""GHOLM-Net's localisation as the paper writes it: eq. (5) on the raw heatmap, crops cut from the original
resolution, erased pixels at the normalisation mean."""

import pytest
import torch
import torch.nn as nn

from fgic.cam import crop_resize, erase, heatmap_to_boxes
from fgic.data import build_dataset
from fgic.data.transforms import IMAGENET_MEAN, build_transform, denormalize
from fgic.engine import TrainConfig, fit
from fgic.losses import create_loss
from fgic.models import create_model
from fgic.models.gholm import GHOLMNet


class Probe(nn.Module):
    """A backbone whose Grad-CAM is known: the feature map is channel 0 of the input at full resolution and
    class 0's logit is its mean, so the raw heatmap of class 0 is channel 0 / (H W) (all values > 0 here)."""

    num_classes, num_features, feature_channels = 2, 1, 1

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1, bias=False)
        self.fc = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))

    def forward_features(self, x):
        return self.conv(x)  # (B, 1, H, W)

    def forward_head(self, fmap, pre_logits=False):
        z = fmap.mean((2, 3))  # (B, 1)
        return z if pre_logits else self.classify(z)

    def classify(self, z):
        return self.fc(z)  # (B, 2)

    def get_classifier(self):
        return self.fc

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def two_regions(size: int = 16) -> torch.Tensor:
    """(1, 3, S, S): channel 0 is 1 with a small hot block A (3.0) and a larger warm block B (1.5)."""
    x = torch.zeros(1, 3, size, size)
    k = size // 16
    x[0, 0] = 1.0
    x[0, 0, 2 * k : 6 * k, 2 * k : 6 * k] = 3.0  # A: 4 x 4 at 16 px
    x[0, 0, 9 * k : 15 * k, 8 * k : 16 * k] = 1.5  # B: 6 x 8 at 16 px
    return x


def test_eq5_thresholds_the_raw_heatmap():
    """mean = 1.22: mu = 1.7 keeps only A on the raw map (> 2.07), while after min-max normalisation the
    threshold falls to min + 1.7 (mean - min), below B's 1.5, and the larger B wins."""
    x = two_regions()
    paper = GHOLMNet(Probe(), mu=1.7).eval()
    v = paper.branch_views(x)
    torch.testing.assert_close(v["boxes"], torch.tensor([[2.0, 2.0, 6.0, 6.0]]))  # A
    raw = x[:, 0] / 256  # eq. (3): ReLU(a * A), a = 1 / (H W)
    torch.testing.assert_close(v["heat"], raw)
    minmax = GHOLMNet(Probe(), mu=1.7, heat_norm="minmax").eval()
    torch.testing.assert_close(minmax.branch_views(x)["boxes"], torch.tensor([[8.0, 9.0, 16.0, 15.0]]))  # B
    # the training step crops the same box as the figure
    seen = []
    crop_views = paper.crop_views
    paper.crop_views = lambda *a: seen.append(crop_views(*a)[0]) or crop_views(*a)
    paper.loss_parts(x, torch.tensor([0]))
    torch.testing.assert_close(seen[0], torch.tensor([[2.0, 2.0, 6.0, 6.0]]))
    with pytest.raises(ValueError, match="heat_norm"):
        GHOLMNet(Probe(), heat_norm="softmax")


def test_crop_is_cut_from_the_original_resolution():
    """A 1-pixel checkerboard in channels 1-2 exists only at 64 px: the crop from the original view keeps it,
    a crop of the 16 px input (what the backbone's raw branch sees) cannot."""
    hires = two_regions(64)
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    hires[0, 1:] = ((yy + xx) % 2 * 2 - 1).float()  # +-1 checkerboard, period 2 px
    model = GHOLMNet(Probe(), mu=1.7, input_size=16).eval()
    v = model.branch_views(hires)
    x16 = v["inputs"]
    assert x16.shape[-2:] == (16, 16) and v["crops"].shape == (1, 3, 16, 16)
    box = heatmap_to_boxes(x16[:, 0], 1.7 * x16[:, 0].mean())  # eq. (5) on the 16 px input
    torch.testing.assert_close(v["boxes"], box)
    torch.testing.assert_close(v["crops"], crop_resize(hires, box * 4, 16))  # box scaled x4 onto the original
    from_input = crop_resize(x16, box, 16)
    assert float(v["crops"][0, 1].std()) > 0.5  # the checkerboard survives
    assert float(from_input[0, 1].std()) < 0.1  # averaged away by the resize to 16 px
    # the raw branch and the logits see the 16 px view
    torch.testing.assert_close(model(hires), model.net(x16))
    torch.testing.assert_close(model.predict_logits(hires, "raw"), model.net(x16))


def test_training_through_the_dataset_feeds_the_original_view():
    """The data set renders at 2x the input size; the backbone sees the input size, the crop branch the 2x view."""
    kw = {"num_classes": 2, "images_per_class": 4, "test_per_class": 2, "image_size": 64}
    ds = build_dataset("synthetic", split="trainval", transform=build_transform("plain", True, 64), **kw)
    model = create_model("gholm_resnet18", 2, width=8, input_size=32)
    sizes, crop_sources = [], []
    features = model.net.forward_features
    model.net.forward_features = lambda x: sizes.append(tuple(x.shape[-2:])) or features(x)
    crop_views = model.crop_views
    model.crop_views = lambda x, heat, src=None: crop_sources.append(tuple(src.shape[-2:])) or crop_views(x, heat, src)
    res = fit(
        model,
        create_loss("ce", 2),
        ds,
        None,
        None,
        TrainConfig(epochs=1, batch_size=8, accelerator="cpu"),
        progress=False,
    )
    assert res["finished"]
    assert crop_sources == [(64, 64)] and set(sizes) == {(32, 32)}


def test_erased_pixels_are_the_normalisation_mean():
    norm = build_transform("plain", False)
    img = norm(torch.randint(0, 255, (3, 8, 8), dtype=torch.uint8))[None]  # (1, 3, 8, 8) normalised
    mask = torch.ones(1, 1, 8, 8)
    mask[..., 2:5, 3:6] = 0
    model = GHOLMNet(Probe())
    heat = torch.zeros(1, 8, 8)
    heat[0, 2:5, 3:6] = 1.0  # theta x mean < 1 for theta <= 2: exactly this block is erased
    _, keep, out = model.drop_views(img, heat, theta=torch.tensor([1.5]))
    torch.testing.assert_close(keep, mask)
    shown = denormalize(out)[0, :, 3, 4]
    torch.testing.assert_close(shown, torch.tensor(IMAGENET_MEAN))  # the documented fill: ImageNet's mean
    torch.testing.assert_close(out[mask.expand_as(out) > 0], img[mask.expand_as(img) > 0])  # the rest is kept
    fill = torch.tensor([1.0, -1.0, 0.5])
    torch.testing.assert_close(erase(img, mask, fill)[0, :, 3, 4], fill)
