"""The eight losses of the ACANet paper's Table 2: closed forms, gradients, margin-free logits, and agreement
with pytorch-metric-learning where it implements the same loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fgic.losses import create_loss, list_losses
from fgic.losses.asoftmax import chebyshev, sphereface_psi
from fgic.losses.mutual_channel import channel_mask, mc_terms
from fgic.models.base import ModelOutput

K, D, B = 5, 8, 6
NAMES = ["ce", "focal", "mc", "center", "asoftmax", "coco", "lgm", "cosface"]


def make_out(b=B, k=K, d=D, c=None, hw=(3, 4), seed=0) -> tuple[ModelOutput, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = c or d
    fmap = torch.randn(b, c, *hw, generator=g, dtype=torch.float64).requires_grad_()
    emb = torch.randn(b, d, generator=g, dtype=torch.float64).requires_grad_()
    logits = torch.randn(b, k, generator=g, dtype=torch.float64).requires_grad_()
    target = torch.randint(0, k, (b,), generator=g)
    return ModelOutput(fmap, emb, logits), target


def manual_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log softmax, written out (no F.cross_entropy)."""
    z = logits - logits.max(dim=1, keepdim=True).values
    logp = z - z.exp().sum(dim=1, keepdim=True).log()
    return -logp[torch.arange(len(target)), target].mean()


def test_registry_has_all_eight():
    assert set(NAMES) <= set(list_losses())
    assert type(create_loss("lmcl", K, D)) is type(create_loss("cosface", K, D))


@pytest.mark.parametrize("name", NAMES)
def test_every_loss_runs_and_backprops(name):
    out, y = make_out(c=K * 3 if name == "mc" else D)
    loss = create_loss(name, K, D if name != "mc" else K * 3).double()
    value = loss(out, y)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    for field in loss.needs:
        assert getattr(out, field).grad is not None and getattr(out, field).grad.abs().sum() > 0, field
    for n, p in loss.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
    assert loss.logits(out).shape == (B, K)


@pytest.mark.parametrize("name", ["center", "asoftmax", "coco", "lgm", "cosface"])
def test_embedding_losses_need_feat_dim(name):
    with pytest.raises(ValueError):
        create_loss(name, K, None)


# ---------------------------------------------------------------- focal


def test_focal_gamma0_is_ce_and_closed_form():
    out, y = make_out()
    ce = F.cross_entropy(out.logits, y)
    torch.testing.assert_close(create_loss("focal", K, gamma=0.0)(out, y), ce)
    p = out.logits.softmax(1)[torch.arange(B), y]
    expected = (-((1 - p) ** 2) * p.log()).mean()
    torch.testing.assert_close(create_loss("focal", K)(out, y), expected)  # default gamma = 2
    assert create_loss("focal", K)(out, y) < ce


# ---------------------------------------------------------------- mutual channel


def test_channel_mask_drops_exactly_floor_half():
    torch.manual_seed(0)
    m = channel_mask(64, 10, 3, drop=1)
    assert m.shape == (64, 10, 3) and set(m.unique().tolist()) == {0.0, 1.0}
    assert (m.sum(-1) == 2).all()
    assert len({tuple(r.tolist()) for r in m.reshape(-1, 3)}) == 3  # every position gets dropped sometimes


def test_mc_terms_closed_form():
    torch.manual_seed(0)
    b, k, xi, h, w = 2, 3, 3, 2, 3
    fmap = torch.randn(b, k * xi, h, w, dtype=torch.float64)
    y = torch.tensor([2, 0])
    mask = channel_mask(b, k, xi, 1).double()
    l_dis, l_div = mc_terms(fmap, y, xi, mask)
    scores = torch.zeros(b, k, dtype=torch.float64)
    div = 0.0
    for i in range(b):
        for c in range(k):
            chans = [fmap[i, c * xi + j] * mask[i, c, j] for j in range(xi)]
            scores[i, c] = torch.stack(chans).max(0).values.mean()  # CWA, CCMP, GAP
            soft = [torch.softmax(fmap[i, c * xi + j].flatten(), 0) for j in range(xi)]
            div += torch.stack(soft).max(0).values.sum().item()
    torch.testing.assert_close(l_dis, manual_ce(scores, y))
    assert l_div.item() == pytest.approx(div / (b * k) / xi)
    assert 1 / xi - 1e-9 <= l_div.item() <= 1 + 1e-9


def test_mc_total_and_projection():
    out, y = make_out(c=7)
    loss = create_loss("mc", K, 7).double()  # 7 != K * 3: the loss owns a 1x1 projection
    assert isinstance(loss.proj, torch.nn.Conv2d) and loss.proj.out_channels == K * 3
    torch.manual_seed(3)
    value = loss(out, y)
    torch.manual_seed(3)
    mask = channel_mask(B, K, 3, 1).double()
    l_dis, l_div = mc_terms(loss.proj(out.feature_map), y, 3, mask)
    torch.testing.assert_close(value, manual_ce(out.logits, y) + 1.5 * l_dis + 20.0 * (1 - l_div))
    value.backward()
    assert loss.proj.weight.grad.abs().sum() > 0 and out.feature_map.grad.abs().sum() > 0
    assert isinstance(create_loss("mc", K, K * 3).proj, torch.nn.Identity)
    with pytest.raises(ValueError):
        loss(make_out(c=9)[0], y)


# ---------------------------------------------------------------- center


def test_center_closed_form_and_centre_gradient():
    out, y = make_out()
    loss = create_loss("center", K, D, lam=0.01).double()
    with torch.no_grad():
        loss.centers.normal_()
    value = loss(out, y)
    c = loss.centers.detach()
    expected = manual_ce(out.logits, y) + 0.01 * 0.5 * ((out.embedding - c[y]) ** 2).sum(1).mean()
    torch.testing.assert_close(value, expected)
    value.backward()
    # d/dc_j = lam * scale * sum_{i: y_i = j} (c_j - f_i) / B with scale = 1/lam by default
    grad = torch.zeros_like(c)
    for i in range(B):
        grad[y[i]] += (c[y[i]] - out.embedding[i].detach()) / B
    torch.testing.assert_close(loss.centers.grad, grad)
    # the features get the unscaled gradient lam * (f_i - c_y) / B (CE reads only the logits)
    torch.testing.assert_close(out.embedding.grad, 0.01 * (out.embedding.detach() - c[y]) / B)


# ---------------------------------------------------------------- A-softmax


def test_chebyshev_and_psi():
    c = torch.linspace(-1, 1, 101, dtype=torch.float64)
    for m in (1, 2, 3, 4):
        torch.testing.assert_close(chebyshev(c, m), torch.cos(m * torch.acos(c)))
    theta = torch.linspace(0.01, math.pi - 0.01, 200, dtype=torch.float64)
    psi = sphereface_psi(torch.cos(theta), 4)
    k = torch.floor(4 * theta / math.pi)
    torch.testing.assert_close(psi, (-1) ** k * torch.cos(4 * theta) - 2 * k)
    assert (psi.diff() < 0).all()  # monotonically decreasing on [0, pi]
    assert (psi <= torch.cos(theta) + 1e-12).all()  # the margin only lowers the target logit


def test_asoftmax_closed_form_annealing_and_logits():
    out, y = make_out()
    loss = create_loss("asoftmax", K, D).double()
    w = F.normalize(loss.weight.detach(), dim=1)
    x = out.embedding.detach()
    norm = x.norm(dim=1)
    cos = (x @ w.T) / norm[:, None]
    # margin-free logits
    torch.testing.assert_close(loss.logits(out), norm[:, None] * cos)
    lam0 = loss.lam
    assert lam0 == pytest.approx(1000.0)
    value = loss(out, y)
    theta_y = torch.acos(cos[torch.arange(B), y])
    k = torch.floor(4 * theta_y / math.pi)
    psi = (-1) ** k * torch.cos(4 * theta_y) - 2 * k
    target_logit = (lam0 * norm * torch.cos(theta_y) + norm * psi) / (1 + lam0)
    logits = norm[:, None] * cos
    logits[torch.arange(B), y] = target_logit
    torch.testing.assert_close(value, manual_ce(logits, y))
    # iteration-based annealing: advances on training passes only
    assert int(loss.iteration) == 1
    with torch.no_grad():
        loss(out, y)
    loss.eval()
    loss(out, y)
    loss.train()
    assert int(loss.iteration) == 1
    for _ in range(99):
        loss(out, y)
    assert loss.lam == pytest.approx(max(5.0, 1000.0 / (1 + 0.12 * 100)))
    loss.iteration.fill_(10**6)
    assert loss.lam == 5.0
    assert "iteration" in loss.state_dict()


def test_asoftmax_matches_pytorch_metric_learning_sphereface():
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    # PML's SphereFaceLoss is A-softmax with normalised weights, no bias, logits scaled by ||x||, and the
    # full margin psi(theta) (no lambda annealing); ours equals it when lambda = 0.
    torch.manual_seed(0)
    emb = torch.randn(B, D, dtype=torch.float64)
    y = torch.randint(0, K, (B,))
    ours = create_loss("asoftmax", K, D, base=0.0, lambda_min=0.0).double()
    ref = pml.SphereFaceLoss(num_classes=K, embedding_size=D, margin=4, scale=1)
    ref.W.data = ours.weight.detach().T.clone().to(ref.W.dtype)
    expected = ref(emb.float(), y).double()
    got = ours(ModelOutput(None, emb, None), y)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)  # PML runs in float32


# ---------------------------------------------------------------- COCO


def test_coco_closed_form_and_scale_invariance():
    out, y = make_out()
    loss = create_loss("coco", K, D, alpha=4.0).double()
    c = loss.centroids.detach()
    cos = (out.embedding / out.embedding.norm(dim=1, keepdim=True)) @ (c / c.norm(dim=1, keepdim=True)).T
    torch.testing.assert_close(loss(out, y), manual_ce(4.0 * cos, y))
    torch.testing.assert_close(loss.logits(out), 4.0 * cos)
    scaled = ModelOutput(None, 3.0 * out.embedding, None)
    torch.testing.assert_close(loss(scaled, y), loss(out, y))  # features are normalised
    assert create_loss("coco", K, D).alpha == 6.25


# ---------------------------------------------------------------- LGM


@pytest.mark.parametrize("learn_var", [True, False])
def test_lgm_closed_form(learn_var):
    out, y = make_out()
    loss = create_loss("lgm", K, D, learn_var=learn_var).double()
    assert (loss.alpha, loss.lam) == (0.1, 0.01)
    if learn_var:
        with torch.no_grad():
            loss.log_var.normal_(0, 0.3)
    mu, var = loss.means.detach(), loss.log_var.detach().exp()
    x = out.embedding.detach()
    d = torch.zeros(B, K, dtype=torch.float64)
    for i in range(B):
        for k in range(K):
            d[i, k] = 0.5 * (((x[i] - mu[k]) ** 2) / var[k]).sum()
    logdet = var.log().sum(1)
    margin_logits = -d - 0.5 * logdet
    margin_logits[torch.arange(B), y] = -(1.1) * d[torch.arange(B), y] - 0.5 * logdet[y]
    lkd = (d[torch.arange(B), y] + 0.5 * logdet[y]).mean()
    torch.testing.assert_close(loss(out, y), manual_ce(margin_logits, y) + 0.01 * lkd)
    torch.testing.assert_close(loss.logits(out), -d - 0.5 * logdet)  # inference without the margin
    assert loss.log_var.requires_grad == learn_var


def test_lgm_margin_and_nearest_mean():
    out, y = make_out()
    with_margin = create_loss("lgm", K, D, learn_var=False).double()
    no_margin = create_loss("lgm", K, D, alpha=0.0, learn_var=False).double()
    no_margin.load_state_dict(with_margin.state_dict())
    assert with_margin(out, y) > no_margin(out, y)
    # identity covariance: the prediction is the nearest mean
    nearest = torch.cdist(out.embedding.detach(), with_margin.means.detach()).argmin(1)
    assert torch.equal(with_margin.logits(out).argmax(1), nearest)


# ---------------------------------------------------------------- CosFace / LMCL


def test_cosface_closed_form_and_margin_free_logits():
    out, y = make_out()
    loss = create_loss("cosface", K, D).double()
    assert (loss.s, loss.m) == (64.0, 0.35)
    w = F.normalize(loss.weight.detach(), dim=1)
    cos = F.normalize(out.embedding.detach(), dim=1) @ w.T
    margin = torch.zeros(B, K, dtype=torch.float64)
    margin[torch.arange(B), y] = 0.35
    torch.testing.assert_close(loss(out, y), manual_ce(64 * (cos - margin), y))
    torch.testing.assert_close(loss.logits(out), 64 * cos)


def test_cosface_matches_pytorch_metric_learning():
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    torch.manual_seed(0)
    emb = torch.randn(B, D)
    y = torch.randint(0, K, (B,))
    ours = create_loss("cosface", K, D)
    ref = pml.CosFaceLoss(num_classes=K, embedding_size=D, margin=0.35, scale=64)
    ref.W.data = ours.weight.detach().T.clone()
    torch.testing.assert_close(ours(ModelOutput(None, emb, None), y), ref(emb, y), atol=1e-4, rtol=1e-5)
