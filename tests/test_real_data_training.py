"""The engine on real images: a few steps on the CUB-200-2011 subset in ../shared/data/cub100.

Skipped, with the reason, where ../shared is absent. Nothing from ../shared is copied into the project.
"""

from pathlib import Path

import pytest
import torch
from torch.utils.data import Subset

from fgic.data import build_dataset
from fgic.data.transforms import build_transform
from fgic.engine import TrainConfig, fit
from fgic.localize import localisation_scores
from fgic.losses import create_loss
from fgic.models import create_model

CUB100 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cub100"
pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(not CUB100.is_dir(), reason=f"real CUB subset not found at {CUB100} (../shared/data/cub100)"),
]


def test_train_and_evaluate_on_real_cub_images():
    tf_train = build_transform("acanet", train=True, image_size=64)
    tf_eval = build_transform("acanet", train=False, image_size=64)
    train = build_dataset("cub", root=CUB100, split="train", transform=tf_train)
    val = build_dataset("cub", root=CUB100, split="val", transform=tf_eval)
    assert len(train) + len(val) == 2903 and len(set(train.targets)) == 100
    k = len(train.classes)
    torch.manual_seed(0)
    model = create_model("resnet18", k, width=8)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, accelerator="cpu")
    val32 = Subset(val, range(32))
    res = fit(model, create_loss("ce", k), Subset(train, range(64)), val32, cfg=cfg, progress=False)
    assert res["finished"] and len(res["history"]) == 2
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in res["history"])
    # the metrics are those of the trained model on these 32 images, counted here by hand
    m = res["metrics"]
    xs = torch.stack([val32[i][0] for i in range(32)])
    ys = torch.tensor([val32[i][1] for i in range(32)])
    model.eval()
    with torch.no_grad():
        pred = model(xs).argmax(1)
    conf = torch.tensor(m["confusion"])
    assert conf.shape == (k, k) and conf.sum(1).tolist() == torch.bincount(ys, minlength=k).tolist()
    assert torch.equal(conf, torch.bincount(ys * k + pred, minlength=k * k).view(k, k))
    assert m["val_top1"] == pytest.approx((pred == ys).float().mean().item())
    support = conf.sum(1)
    assert m["per_class_acc"] == [
        None if n == 0 else pytest.approx(conf[c, c].item() / n.item()) for c, n in enumerate(support)
    ]
    x, _ = val[0]
    assert x.shape == (3, 64, 64)


def test_heatmap_scoring_needs_only_object_boxes():
    """CUB-style annotations (object box, no parts) score the object and leave part scores empty."""
    hm = torch.zeros(1, 8, 8)
    hm[0, 4, 4] = 1.0
    s = localisation_scores(hm, [{"object": (20, 20, 60, 60), "size": (80, 80)}])
    assert s["pointing_object"].item() == 1.0 and torch.isnan(s["pointing_part"]).all()
