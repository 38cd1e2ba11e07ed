"""The engine: schedules, per-module learning rates, learning, the NaN guard, exact resume, DDP."""

import math

import pytest
import torch
import torch.nn as nn
from torch.utils.data import Dataset, TensorDataset

from fgic.engine import (
    NonFiniteLossError,
    TrainConfig,
    build_param_groups,
    confusion_metrics,
    fit,
    lr_factor,
)
from fgic.losses import create_loss
from fgic.losses.base import FGICLoss
from fgic.models import ClassifierNet


def tiny_net(num_classes=3, drop=0.0, bn=False):
    layers = [nn.Conv2d(3, 8, 3, padding=1)] + ([nn.BatchNorm2d(8)] if bn else []) + [nn.ReLU()]
    return ClassifierNet(nn.Sequential(*layers), 8, num_classes, drop_rate=drop)


def blobs(n=48, k=3, size=8, seed=0):
    """Linearly separable colour blobs: class c brightens channel c."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    x = torch.randn(n, 3, size, size, generator=g) * 0.5
    x[torch.arange(n), y] += 1.5
    return TensorDataset(x, y)


class NoisyFlip(Dataset):
    """Random augmentation from the global torch RNG, to exercise the per-epoch reseeding."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x + 0.1 * torch.randn_like(x), y


CPU = dict(accelerator="cpu", weight_decay=0.0)


def test_lr_schedules():
    ms = TrainConfig(epochs=600, schedule="multistep", milestones=(200, 400), gamma=0.1)
    assert [lr_factor(ms, e) for e in (0, 199, 200, 399, 400, 599)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    st = TrainConfig(epochs=30, schedule="step", step_size=5, gamma=0.1)
    assert lr_factor(st, 4) == 1 and lr_factor(st, 5) == pytest.approx(0.1) and lr_factor(st, 29) == pytest.approx(1e-5)
    cos = TrainConfig(epochs=10, schedule="cosine")
    assert lr_factor(cos, 0) == 1 and lr_factor(cos, 5) == pytest.approx(0.5)
    assert lr_factor(cos, 9) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.9)))
    wu = TrainConfig(epochs=10, schedule="none", warmup_epochs=3)
    assert [lr_factor(wu, e) for e in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_factor(TrainConfig(schedule="poly"), 0)


def test_param_groups_by_prefix():
    net = tiny_net()
    net.attention = nn.Linear(2, 2)  # stands in for an attention module
    crit = create_loss("ce", 3)
    groups = build_param_groups({"model": net, "criterion": crit}, 0.5, {"attention": 0.1, "": 0.01})
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in groups}
    assert by_lr[0.1] == {id(p) for p in net.attention.parameters()}
    rest = {id(p) for n, p in net.named_parameters() if not n.startswith("attention")}
    assert by_lr[0.01] == rest


def test_fit_learns_and_reports():
    ds = blobs()
    torch.manual_seed(0)
    res = fit(
        tiny_net(), create_loss("ce", 3), ds, ds, ds, TrainConfig(epochs=6, batch_size=8, lr=0.1, **CPU), progress=False
    )
    h = res["history"]
    assert len(h) == 6 and h[-1]["train_loss"] < h[0]["train_loss"]
    assert res["metrics"]["test_top1"] > 0.9  # the blobs are separable
    assert set(h[0]) >= {"epoch", "train_loss", "train_acc", "val_acc", "test_acc", "lr", "seconds"}
    conf = torch.tensor(res["metrics"]["confusion"])
    assert conf.sum() == len(ds) and conf.shape == (3, 3)


def test_confusion_metrics():
    conf = torch.tensor([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    m = confusion_metrics(conf)
    assert m["top1"] == pytest.approx(5 / 6)
    assert m["per_class_acc"] == [pytest.approx(0.75), 1.0, None]


class NaNLoss(FGICLoss):
    def forward(self, out, target):
        return out.logits.sum() * float("nan")


def test_nan_guard_stops_with_clear_message():
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 1"):
        fit(tiny_net(), NaNLoss(), blobs(), cfg=TrainConfig(epochs=2, batch_size=8, **CPU), progress=False)


@pytest.mark.parametrize("workers", [0, 2], ids=["no-workers", "2-persistent-workers"])
def test_resume_is_exact(tmp_path, workers):
    ds = NoisyFlip(blobs(n=40))
    cfg = TrainConfig(epochs=4, batch_size=8, lr=0.05, num_workers=workers, **CPU)

    def run(ckpt, stop=None):
        torch.manual_seed(1)
        model = tiny_net(drop=0.3, bn=True)
        res = fit(model, create_loss("ce", 3), ds, ds, None, cfg, checkpoint=ckpt, stop_after=stop, progress=False)
        return model, res

    full_model, full = run(tmp_path / "a.pt")
    _, part = run(tmp_path / "b.pt", stop=2)
    assert not part["finished"] and len(part["history"]) == 2
    resumed_model, resumed = run(tmp_path / "b.pt")  # a fresh model, continued from the checkpoint
    assert resumed["finished"]
    strip = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "train_img_s")} for r in h]
    assert strip(resumed["history"]) == strip(full["history"])
    for (n, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), n
    torch.load(tmp_path / "b.pt", weights_only=True)  # checkpoints load without pickle


def test_ddp_two_cpu_processes_match_one_process(tmp_path):
    """Two processes with batch b each and averaged gradients = one process with batch 2b (no BN)."""
    ds = blobs(n=32)

    def run(devices, batch, ckpt):
        torch.manual_seed(3)
        cfg = TrainConfig(
            epochs=2,
            batch_size=batch,
            lr=0.1,
            schedule="none",
            devices=devices,
            strategy="ddp_spawn" if devices > 1 else "auto",
            **CPU,
        )
        res = fit(tiny_net(), create_loss("ce", 3), ds, ds, None, cfg, checkpoint=ckpt, progress=False)
        return res, torch.load(ckpt, weights_only=True)["module"]

    one, sd1 = run(1, 8, tmp_path / "one.pt")
    two, sd2 = run(2, 4, tmp_path / "two.pt")
    assert two["world_size"] == 2 and one["world_size"] == 1
    for k in sd1:
        torch.testing.assert_close(sd1[k], sd2[k], atol=1e-5, rtol=1e-4)
    assert two["metrics"]["val_top1"] == pytest.approx(one["metrics"]["val_top1"])


@pytest.mark.parametrize(
    "kw",
    [{"precision": "bf16-mixed"}, {"channels_last": True}, {"compile": True}],
    ids=["bf16", "channels_last", "compile"],
)
def test_gpu_oriented_paths_also_run_on_cpu(kw):
    """bf16 autocast, channels-last and torch.compile (auto-enabled on CUDA) still train when forced on CPU."""
    torch.manual_seed(0)
    ds = blobs()
    res = fit(
        tiny_net(),
        create_loss("ce", 3),
        ds,
        ds,
        None,
        TrainConfig(epochs=3, batch_size=8, lr=0.1, **kw, **CPU),
        progress=False,
    )
    assert res["precision"] == kw.get("precision", "32-true")
    assert res["history"][-1]["train_loss"] < res["history"][0]["train_loss"] and res["metrics"]["val_top1"] > 0.6


def test_compiled_run_resumes_and_saves_plain_keys(tmp_path, monkeypatch):
    """Issue 10.1: checkpoints of a torch.compile run hold the plain module's keys (no ``_orig_mod.``)."""
    import functools

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))  # same wrapper, fast
    ds = blobs(n=24)
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.05, compile=True, **CPU)
    torch.manual_seed(0)
    fit(tiny_net(), create_loss("ce", 3), ds, ds, None, cfg, checkpoint=tmp_path / "c.pt", stop_after=1, progress=False)
    state = torch.load(tmp_path / "c.pt", weights_only=True)["module"]
    assert state and not any("_orig_mod" in k for k in state)
    plain = tiny_net()
    plain.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    resumed = fit(tiny_net(), create_loss("ce", 3), ds, ds, None, cfg, checkpoint=tmp_path / "c.pt", progress=False)
    assert resumed["finished"] and [h["epoch"] for h in resumed["history"]] == [1, 2]


def test_checkpoints_of_older_compiled_runs_still_load(tmp_path):
    from fgic.engine import TrainModule, load_module_state

    module = TrainModule(tiny_net(), create_loss("ce", 3))
    old = {f"_orig_mod.{k}": v for k, v in module.state_dict().items()}
    fresh = TrainModule(tiny_net(), create_loss("ce", 3))
    load_module_state(fresh, old, tmp_path / "last.pt")
    for k, v in module.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


@pytest.mark.parametrize(
    "loss, parts",
    [("center", {"ce", "center"}), ("mc", {"ce", "dis", "div"})],
)
def test_loss_parts_are_recorded_per_epoch(loss, parts):
    """Issue 10.3: the history holds each part's epoch mean as ``loss_<part>``; the parts sum to the loss."""
    torch.manual_seed(0)
    net = tiny_net()
    kw = {"in_channels": 8} if loss == "mc" else {}
    res = fit(
        net,
        create_loss(loss, 3, net.num_features, **kw),
        blobs(),
        cfg=TrainConfig(epochs=2, batch_size=8, **CPU),
        progress=False,
    )
    for row in res["history"]:
        assert {k for k in row if k.startswith("loss_")} == {f"loss_{p}" for p in parts}
        assert sum(row[f"loss_{p}"] for p in parts) == pytest.approx(row["train_loss"], rel=1e-5)


def test_gholm_loss_parts_stay_on_the_device_and_reach_the_history():
    """GHOLM's parts are kept as tensors (no host sync per step) and averaged once per epoch."""
    from fgic.models import create_model

    torch.manual_seed(0)
    model = create_model("gholm_resnet18", 3, width=8)
    ds = TensorDataset(torch.randn(8, 3, 32, 32), torch.arange(8) % 3)
    res = fit(model, create_loss("ce", 3), ds, cfg=TrainConfig(epochs=1, batch_size=4, **CPU), progress=False)
    assert all(isinstance(v, torch.Tensor) for v in model.last_losses.values())
    row = res["history"][0]
    names = {"loss_raw", "loss_crop", "loss_drop", "loss_supcon"}
    assert names <= set(row) and sum(row[k] for k in names) == pytest.approx(row["train_loss"], rel=1e-5)


def test_loss_parameters_get_their_documented_weight_decay():
    """Issue 10.4: centres are not decayed; margin-classifier weights share the model's decay."""
    net = tiny_net()
    for name, expected in (("center", 0.0), ("lgm", 0.0), ("coco", 0.0), ("cosface", 5e-4), ("asoftmax", 5e-4)):
        crit = create_loss(name, 3, net.num_features)
        groups = build_param_groups({"model": net, "criterion": crit}, 0.1, {}, weight_decay=5e-4)
        wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
        assert all(wd_of[id(p)] == expected for p in crit.parameters() if p.requires_grad), name
        assert all(wd_of[id(p)] == 5e-4 for p in net.parameters()), name
    res = fit(
        tiny_net(), create_loss("center", 3, 8), blobs(), cfg=TrainConfig(epochs=1, batch_size=8, **CPU), progress=False
    )
    assert res["loss_weight_decay"] == 0.0


def test_num_workers_auto_is_a_valid_setting_and_other_strings_are_not():
    """The paper profiles ask for num_workers: auto (cores - 1); any other string is a clear error."""
    from fgic.engine import ConfigError

    assert TrainConfig(num_workers="auto").num_workers == "auto"
    with pytest.raises(ConfigError, match="num_workers"):
        TrainConfig(num_workers="many")


def test_eval_every_applies_to_val_and_test_and_the_final_evaluation_runs_once(monkeypatch):
    import fgic.engine as engine

    calls = []
    real = engine.evaluate
    monkeypatch.setattr(engine, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    ds = blobs()
    cfg = TrainConfig(epochs=4, batch_size=8, eval_every=2, **CPU)
    res = fit(tiny_net(), create_loss("ce", 3), ds, ds, ds, cfg, progress=False)
    evaluated = [r["epoch"] for r in res["history"] if "test_acc" in r]
    assert evaluated == [r["epoch"] for r in res["history"] if "val_acc" in r] == [2, 4]
    assert len(calls) == 4  # 2 evaluations x (val, test): the last epoch's serve the final metrics
    assert res["metrics"]["test_top1"] == res["history"][-1]["test_acc"]


class FixedLogits(ClassifierNet):
    """Its logits are its input (B, K, 1, 1) whatever the training does: the scale ``w`` enters with weight 0."""

    def __init__(self, k):
        super().__init__(nn.Identity(), k, k)
        self.fc.weight.data.copy_(torch.eye(k))
        self.fc.bias.data.zero_()
        self.fc.requires_grad_(False)
        self.w = nn.Parameter(torch.zeros(()))  # gradient 0: SGD without weight decay leaves everything as is

    def forward_features(self, x):
        return x * (1 + 0 * self.w)


def ranked(labels, ranks, k):
    """Logits (N, K, 1, 1) that put each true class at the given 0-based rank."""
    rows = []
    for y, r in zip(labels, ranks):
        order = [c for c in range(k) if c != y]
        order.insert(r, y)  # classes from the highest score down
        row = torch.empty(k)
        row[order] = torch.arange(k, 0, -1, dtype=torch.float)
        rows.append(row)
    return torch.stack(rows)[:, :, None, None]


def test_final_metrics_have_top5_throughput_and_peak_memory():
    k, y = 6, torch.arange(12) % 6  # two images of each of 6 classes
    ranks = [0, 0, 0, 1, 4, 5, 5, 2, 0, 3, 5, 1]  # rank of the true class; class c: images c and c + 6
    ds = TensorDataset(ranked(y.tolist(), ranks, k), y)
    cfg = TrainConfig(epochs=1, batch_size=4, eval_batch_size=5, **CPU)  # 3 evaluation batches, the last short
    res = fit(FixedLogits(k), create_loss("ce", k), ds, None, ds, cfg, progress=False)
    m = res["metrics"]
    assert m["test_top1"] == pytest.approx(4 / 12)  # rank 0 four times
    assert m["test_top5"] == pytest.approx(9 / 12)  # rank 5 three times: outside the top 5
    assert m["per_class_acc"] == pytest.approx([0.5, 0.5, 1.0, 0.0, 0.0, 0.0])
    assert res["train_img_s"] > 0 and res["history"][0]["train_img_s"] > 0
    assert res["peak_memory_mb"] > 10  # a Python process with torch holds more than 10 MiB


def test_max_steps_and_limits_shrink_an_epoch():
    ds = blobs(n=60)
    cfg = TrainConfig(epochs=1, batch_size=4, max_steps=2, limit_eval=10, **CPU)
    res = fit(tiny_net(), create_loss("ce", 3), ds, None, ds, cfg, progress=False)
    assert sum(map(sum, res["metrics"]["confusion"])) == 10
    seen = res["history"][0]["train_img_s"] * res["history"][0]["seconds"]
    assert seen == pytest.approx(8, rel=1e-6)  # 2 steps of 4 images
    cfg = TrainConfig(epochs=1, batch_size=100, limit_train=12, **CPU)
    res = fit(tiny_net(), create_loss("ce", 3), ds, None, None, cfg, progress=False)
    assert res["history"][0]["train_img_s"] * res["history"][0]["seconds"] == pytest.approx(12, rel=1e-6)
