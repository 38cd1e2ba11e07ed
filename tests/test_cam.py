"""fgic.cam: Grad-CAM / CAM against closed forms, heatmap -> box / crop / drop mask, localisation scores."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fgic.cam import (
    box_iou,
    cam,
    crop_resize,
    drop_mask,
    energy_in_box,
    erase,
    grad_cam,
    heatmap_to_box,
    heatmap_to_boxes,
    normalize_maps,
    pointing_game,
    relative_threshold,
)
from fgic.models.base import ClassifierNet


def _minmax(m):
    return normalize_maps(m)


def _linear_head_net(c=4, k=3, seed=0):
    """A GAP + linear head on the input itself: logits = W mean_hw(A) + b, so d y_c / d A_k = W_ck / (h w)."""
    torch.manual_seed(seed)
    return ClassifierNet(nn.Identity(), c, k)


def test_grad_cam_linear_head_closed_form():
    net = _linear_head_net().train()
    a = torch.randn(3, 4, 5, 6)  # the "image" is the feature map
    classes = torch.tensor([0, 2, 1])
    heat = grad_cam(net, a, classes)
    w = net.fc.weight[classes]  # (B, C)
    # a_k^c = W_ck / (h w) (eq. 1), gradcam = ReLU(sum_k a_k A^k) (eq. 2); min-max is scale-invariant
    expected = _minmax(F.relu(torch.einsum("bc,bchw->bhw", w, a)))
    assert heat.shape == (3, 5, 6)
    torch.testing.assert_close(heat, expected, atol=1e-5, rtol=1e-5)


def test_grad_cam_upsamples_and_defaults_to_prediction():
    torch.manual_seed(1)
    feats = nn.Conv2d(3, 4, 3, stride=4, padding=1)  # 16 px -> 4 x 4 feature map
    net = ClassifierNet(feats, 4, 5).eval()
    x = torch.randn(2, 3, 16, 16)
    heat, logits = grad_cam(net, x, return_logits=True)
    fmap = feats(x)
    w = net.fc.weight[logits.argmax(1)]
    small = F.relu(torch.einsum("bc,bchw->bhw", w, fmap))
    up = F.interpolate(small[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    expected = _minmax(up)
    torch.testing.assert_close(heat, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, net(x))
    assert heat.min() >= 0 and heat.max() <= 1 and not heat.requires_grad


def test_grad_cam_batched_equals_per_image_and_leaves_grads_alone():
    torch.manual_seed(2)
    net = ClassifierNet(nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.GELU(), nn.Conv2d(8, 8, 3, 2, 1)), 8, 4)
    net.train()
    x = torch.randn(4, 3, 20, 20)
    with torch.no_grad():  # also works under no_grad (evaluation loops)
        heat = grad_cam(net, x)
    per = torch.cat([grad_cam(net, x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(heat, per, atol=1e-5, rtol=1e-5)
    assert all(p.grad is None for p in net.parameters())
    # inside a training step: logits stay attached, backward after Grad-CAM works and is the usual one
    heat, logits = grad_cam(net, x, return_logits=True)
    assert all(p.grad is None for p in net.parameters())
    F.cross_entropy(logits, torch.arange(4)).backward()
    g = net.fc.weight.grad.clone()
    net.zero_grad()
    F.cross_entropy(net(x), torch.arange(4)).backward()
    torch.testing.assert_close(g, net.fc.weight.grad)


def test_grad_cam_frozen_model():
    net = _linear_head_net().requires_grad_(False)
    a = torch.randn(2, 4, 3, 3)
    heat = grad_cam(net, a, torch.tensor([1, 1]))
    expected = _minmax(F.relu(torch.einsum("c,bchw->bhw", net.fc.weight[1], a)))
    torch.testing.assert_close(heat, expected, atol=1e-5, rtol=1e-5)


def test_cam_closed_form_and_fcn_hook():
    net = _linear_head_net().eval()
    a = torch.randn(2, 4, 5, 5)
    classes = torch.tensor([2, 0])
    expected = _minmax(torch.einsum("bc,bchw->bhw", net.fc.weight[classes], a))  # no ReLU in CAM
    torch.testing.assert_close(cam(net, a, classes), expected)
    net.fc.cam = lambda fmap: -torch.einsum("kc,bchw->bkhw", net.fc.weight, fmap)  # an FCN head's own maps
    expected = _minmax(-torch.einsum("bc,bchw->bhw", net.fc.weight[classes], a))
    torch.testing.assert_close(cam(net, a, classes), expected)


def test_heatmap_to_box_largest_region_and_empty():
    h = torch.zeros(10, 12)
    h[1:3, 1:3] = 0.9  # 4 px blob
    h[5:9, 6:11] = 0.6  # 20 px blob, larger -> chosen
    h[4, 5] = 0.7  # touches the big blob diagonally: 8-connectivity joins it
    torch.testing.assert_close(heatmap_to_box(h, 0.5), torch.tensor([5.0, 4.0, 11.0, 9.0]))
    torch.testing.assert_close(heatmap_to_box(h, 0.8), torch.tensor([1.0, 1.0, 3.0, 3.0]))
    torch.testing.assert_close(heatmap_to_box(h, 0.95), torch.tensor([0.0, 0.0, 12.0, 10.0]))  # empty: whole
    batch = torch.stack([h, h.flip(1)])
    boxes = heatmap_to_boxes(batch, torch.tensor([0.5, 0.8]))
    torch.testing.assert_close(boxes[1], torch.tensor([12 - 3.0, 1.0, 12 - 1.0, 3.0]))
    torch.testing.assert_close(boxes[0], heatmap_to_box(h, 0.5))


def test_relative_threshold_and_drop_mask():
    h = torch.tensor([[[0.0, 0.2], [0.4, 1.0]]])  # mean 0.4
    torch.testing.assert_close(relative_threshold(h, 1.5), torch.tensor([0.6]))
    mask = drop_mask(h, 1.5)  # erase heat > 0.6 (eq. 6)
    torch.testing.assert_close(mask, torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]]))
    masks = drop_mask(torch.cat([h, h]), torch.tensor([1.5, 0.4]))  # per-image theta: 0.16 -> 3 erased
    assert masks.shape == (2, 1, 2, 2) and masks[1].sum() == 1
    x = torch.ones(1, 3, 2, 2)
    assert erase(x, mask).sum() == 9


def test_crop_resize_exact_pixels():
    x = torch.randn(2, 3, 8, 10)
    whole = torch.tensor([[0.0, 0.0, 10.0, 8.0]] * 2)
    torch.testing.assert_close(crop_resize(x, whole, (8, 10)), x)
    box = torch.tensor([[2.0, 3.0, 6.0, 7.0], [0.0, 1.0, 4.0, 5.0]])
    out = crop_resize(x, box, 4)  # bin size 1: exact pixels
    torch.testing.assert_close(out[0], x[0, :, 3:7, 2:6])
    torch.testing.assert_close(out[1], x[1, :, 1:5, 0:4])
    big = crop_resize(x, box, (8, 8))
    assert big.shape == (2, 3, 8, 8)


def test_localisation_scores():
    h = torch.zeros(2, 4, 4)
    h[0, 1, 2] = 1.0  # peak at x=2, y=1
    h[1, 3, 0] = 1.0
    h[1, 0, 0] = 0.5
    boxes = torch.tensor([[2.0, 0.0, 4.0, 2.0], [1.0, 0.0, 4.0, 4.0]])
    assert pointing_game(h, boxes).tolist() == [True, False]
    assert pointing_game(h, boxes, tolerance=1.0).tolist() == [True, True]
    torch.testing.assert_close(energy_in_box(h, boxes), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(energy_in_box(h, torch.tensor([[0.0, 0.0, 4.0, 4.0]] * 2)), torch.ones(2))
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [2.0, 2.0, 3.0, 3.0]])
    torch.testing.assert_close(box_iou(a, b), torch.tensor([1 / 7, 1.0, 0.0]))


@pytest.mark.parametrize("shape", [(1, 5, 5), (3, 7, 9)])
def test_normalize_maps_range(shape):
    m = normalize_maps(torch.randn(shape) * 10)
    assert m.amin((1, 2)).abs().max() < 1e-6 and (m.amax((1, 2)) - 1).abs().max() < 1e-6
    assert normalize_maps(torch.full(shape, 3.0)).abs().max() == 0  # constant map -> zeros
    noisy = torch.full(shape, 3.0) + torch.randn(shape) * 1e-7  # flat up to float rounding
    assert normalize_maps(noisy).abs().max() == 0
