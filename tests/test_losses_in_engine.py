"""Every registered loss trains through the one engine, and its learnable parameters are optimised."""

import copy

import pytest
import torch
import torch.nn as nn

from fgic.engine import TrainConfig, fit
from fgic.losses import create_loss, list_losses
from fgic.models import ClassifierNet
from fgic.models.base import model_outputs
from tests.test_engine import blobs as engine_blobs


def blobs(n=24, **kw):
    return engine_blobs(n=n, **kw)  # tests.test_engine's colour blobs, 24 images by default here


@pytest.mark.parametrize("name", list_losses())
def test_loss_trains_through_the_engine(name):
    torch.manual_seed(0)
    k = 3
    model = ClassifierNet(nn.Sequential(nn.Conv2d(3, 9, 3, padding=1), nn.ReLU()), 9, k)  # 9 = k x 3 channels
    criterion = create_loss(name, num_classes=k, feat_dim=model.num_features)
    before = copy.deepcopy(criterion.state_dict())
    ds = blobs()
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.01, accelerator="cpu", weight_decay=0.0)
    res = fit(model, criterion, ds, ds, None, cfg, progress=False)
    assert res["finished"] and all(torch.isfinite(torch.tensor(r["train_loss"])) for r in res["history"])
    # the reported val top-1 is the trained model's accuracy through the loss's head, counted here by hand
    m = res["metrics"]
    x, y = ds.tensors
    model.eval()
    with torch.no_grad():
        hits = int((criterion.logits(model_outputs(model, x)).argmax(1) == y).sum())
    conf = torch.tensor(m["confusion"])
    assert conf.shape == (k, k) and int(conf.sum()) == len(ds) and conf.sum(1).tolist() == [8, 8, 8]
    assert int(conf.trace()) == hits and m["val_top1"] == pytest.approx(hits / len(ds))
    assert len(res["history"]) == 2 and res["history"][-1]["val_acc"] == m["val_top1"]
    learnable = [n for n, p in criterion.named_parameters() if p.requires_grad]
    moved = [n for n in learnable if not torch.equal(before[n], criterion.state_dict()[n])]
    assert moved == learnable, f"{name}: parameters not optimised: {set(learnable) - set(moved)}"
