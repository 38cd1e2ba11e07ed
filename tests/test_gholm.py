"""GHOLM-Net (seed 003) and the supervised contrastive loss."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fgic.cam import crop_resize, drop_mask, erase, grad_cam, heatmap_to_boxes, relative_threshold
from fgic.losses import create_loss
from fgic.losses.supcon import sup_con_loss
from fgic.models import create_model
from fgic.models.base import ClassifierNet, ModelOutput
from fgic.models.gholm import GHOLMNet

# ---------------------------------------------------------------- SupCon


def _supcon_loops(z, y, tau, negatives_only=False):
    """Eq. (11) written with loops, averaged over anchors that have a positive."""
    z = F.normalize(z, dim=1)
    terms = []
    for i in range(len(z)):
        pos = [p for p in range(len(z)) if p != i and y[p] == y[i]]
        den = [a for a in range(len(z)) if a != i and (not negatives_only or y[a] != y[i])]
        if not pos or not den:
            continue
        lse = torch.logsumexp(torch.stack([z[i] @ z[a] / tau for a in den]), 0)
        terms.append(-sum(z[i] @ z[p] / tau - lse for p in pos) / len(pos))
    return torch.stack(terms).mean()


def test_supcon_closed_form():
    z = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])  # anchors 0, 1 alike; 2 orthogonal, alone
    y = torch.tensor([0, 0, 1])
    # anchor 0: -log(e^1 / (e^1 + e^0)) = log(1 + e^-1); same for anchor 1; anchor 2 has no positive
    torch.testing.assert_close(sup_con_loss(z, y, temperature=1.0), torch.tensor(math.log(1 + math.exp(-1))))
    summed = sup_con_loss(z, y, 1.0, reduction="sum")
    torch.testing.assert_close(summed, torch.tensor(2 * math.log(1 + math.exp(-1))))
    # GHOLM wording (denominator over negatives only): -log(e^1 / e^0) = -1
    torch.testing.assert_close(sup_con_loss(z, y, 1.0, denominator="negatives"), torch.tensor(-1.0))
    assert sup_con_loss(z, torch.tensor([0, 1, 2]), 0.5) == 0  # no positives at all


@pytest.mark.parametrize("tau", [0.1, 0.7])
def test_supcon_matches_loops_and_pytorch_metric_learning(tau):
    from pytorch_metric_learning.losses import SupConLoss as PMLSupCon

    torch.manual_seed(0)
    z = torch.randn(12, 5, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1, 3, 0, 2, 4, 1, 3, 5])  # 4 and 5 have no positive
    ours = sup_con_loss(z, y, tau)
    torch.testing.assert_close(ours, _supcon_loops(z, y, tau))
    torch.testing.assert_close(sup_con_loss(z, y, tau, "negatives"), _supcon_loops(z, y, tau, True))
    torch.testing.assert_close(ours, PMLSupCon(temperature=tau)(z, y), atol=1e-5, rtol=1e-5)
    ours.backward()
    assert torch.isfinite(z.grad).all()


def test_supcon_registered_loss():
    loss = create_loss("supcon", num_classes=3, feat_dim=4, temperature=0.5, ce_weight=1.0)
    emb, logits, y = torch.randn(6, 4), torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
    out = ModelOutput(torch.zeros(6, 4, 1, 1), emb, logits)
    torch.testing.assert_close(loss(out, y), sup_con_loss(emb, y, 0.5) + F.cross_entropy(logits, y))


# ---------------------------------------------------------------- GHOLM-Net


class _Counting(ClassifierNet):
    """A tiny protocol model (32 px -> 8 x 8 feature map) counting its forward passes."""

    def __init__(self, k=3):
        torch.manual_seed(0)
        feats = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.GELU(), nn.Conv2d(8, 8, 3, 2, 1))
        super().__init__(feats, 8, k)
        self.calls = 0

    def forward_features(self, x):
        self.calls += 1
        return super().forward_features(x)


def _batch(b=4, size=32):
    torch.manual_seed(1)
    return torch.randn(b, 3, size, size), torch.tensor([0, 1, 0, 2, 1, 2, 0, 1][:b])


@pytest.mark.parametrize(
    "kw, calls, parts",
    [
        (dict(use_crop=False, use_supcon=False, use_drop=False), 1, {"raw"}),  # Table 2, exp. 1
        (dict(use_crop=True, use_supcon=False, use_drop=False), 2, {"raw", "crop"}),  # exp. 2
        (dict(use_crop=True, use_supcon=True, use_drop=False), 2, {"raw", "crop", "supcon"}),  # exp. 3
        (dict(), 3, {"raw", "crop", "supcon", "drop"}),  # exp. 4, the full model
    ],
)
def test_switches_choose_branches(kw, calls, parts, monkeypatch):
    import fgic.models.gholm as gholm

    cams = []
    real = gholm.grad_cam_from_features
    monkeypatch.setattr(gholm, "grad_cam_from_features", lambda *a, **k: cams.append(1) or real(*a, **k))
    model = GHOLMNet(_Counting(), **kw)
    x, y = _batch()
    loss, logits = model.training_loss(x, y, None)
    assert model.net.calls == calls and set(model.last_losses) == parts
    assert len(cams) == (calls > 1)  # no Grad-CAM for the single-branch model
    assert logits.shape == (4, 3) and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_loss_equals_sum_of_independent_parts():
    model = GHOLMNet(_Counting(), theta_range=(1.5, 1.5)).eval()  # fixed theta: deterministic
    x, y = _batch()
    parts, raw_logits = model.loss_parts(x, y)
    loss, _ = model.training_loss(x, y, None)
    torch.testing.assert_close(loss, sum(parts.values()))
    net = model.net
    torch.testing.assert_close(raw_logits, net(x))
    heat = grad_cam(net, x)  # predicted classes
    crops = crop_resize(x, heatmap_to_boxes(heat, relative_threshold(heat, 1.7)), 32)
    erased = erase(x, drop_mask(heat, 1.5))
    torch.testing.assert_close(parts["raw"], F.cross_entropy(net(x), y))
    torch.testing.assert_close(parts["crop"], F.cross_entropy(net(crops), y))
    torch.testing.assert_close(parts["drop"], 0.2 * F.cross_entropy(net(erased), y))
    supcon = sup_con_loss(torch.cat([net(x), net(crops)]), y.repeat(2), 0.7)
    torch.testing.assert_close(parts["supcon"], supcon)
    # a criterion replaces plain CE in every branch
    smooth = create_loss("ce", num_classes=3, label_smoothing=0.2)
    parts2, _ = model.loss_parts(x, y, smooth)
    torch.testing.assert_close(parts2["raw"], F.cross_entropy(net(x), y, label_smoothing=0.2))


def test_logit_modes_and_no_grad():
    model = GHOLMNet(_Counting()).eval()
    x, _ = _batch()
    net = model.net
    with torch.no_grad():
        raw, crop, both = (model.predict_logits(x, m) for m in ("raw", "crop", "both"))
        default = model.predict_logits(x)
    heat = grad_cam(net, x)
    expected_crop = net(crop_resize(x, heatmap_to_boxes(heat, relative_threshold(heat, 1.7)), 32))
    torch.testing.assert_close(raw, net(x))
    torch.testing.assert_close(crop, expected_crop)
    torch.testing.assert_close(both, raw + crop)
    torch.testing.assert_close(default, both)
    assert not both.requires_grad and all(p.grad is None for p in model.parameters())
    assert torch.equal(GHOLMNet(_Counting(), use_crop=False).predict_logits(x, "both"), _Counting()(x))
    with pytest.raises(ValueError):
        model.predict_logits(x, "sum")


def test_branch_views_boxes_inside_image_and_theta_range():
    model = GHOLMNet(_Counting(), theta_range=(1.2, 1.8))
    x, _ = _batch(8, 40)
    v = model.branch_views(x)
    b = v["boxes"]
    assert b.shape == (8, 4) and (b[:, :2] >= 0).all() and (b[:, 2] <= 40).all() and (b[:, 3] <= 40).all()
    assert (b[:, 2:] > b[:, :2]).all() and ((b[:, 2:] - b[:, :2]).prod(1) < 40 * 40).any()  # real crops
    assert v["crops"].shape == x.shape and v["erased"].shape == x.shape and v["heatmaps"].shape == (8, 40, 40)
    assert ((v["theta"] >= 1.2) & (v["theta"] <= 1.8)).all()
    # erased pixels are exactly those above theta x mean (eq. 6)
    thr = relative_threshold(v["heatmaps"], v["theta"])[:, None, None]
    assert torch.equal(v["masks"][:, 0] == 0, v["heatmaps"] > thr)
    theta = model.sample_theta(20000)
    assert theta.min() >= 1.2 and theta.max() <= 1.8 and abs(theta.mean().item() - 1.5) < 0.01
    assert theta.min() < 1.21 and theta.max() > 1.79


def test_gholm_convnext_atto_forward_backward():
    torch.manual_seed(0)
    model = create_model("gholm_convnext_atto", num_classes=5, mu=1.6, drop_weight=0.3)
    assert (model.mu, model.drop_weight) == (1.6, 0.3) and model.feature_channels == 320
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([1, 1])
    loss, logits = model.training_loss(x, y, None)
    loss.backward()
    assert logits.shape == (2, 5) and set(model.last_losses) == {"raw", "crop", "drop", "supcon"}
    assert model.net.fc.weight.grad is not None and model.net.body.stem[0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert model.eval().predict_logits(x).shape == (2, 5)


def test_gholm_resnet18_backbone_trains_and_predicts():
    torch.manual_seed(0)
    m = create_model("gholm_resnet18", 3, width=8, mu=1.7)
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 0])
    loss, logits = m.training_loss(x, y, None)
    loss.backward()
    assert logits.shape == (4, 3) and torch.isfinite(loss)
    assert m.net.features.conv1.weight.grad is not None and m.net.features.conv1.out_channels == 8
    with torch.no_grad():
        assert m.eval().predict_logits(x).shape == (4, 3)
