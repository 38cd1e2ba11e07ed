"""The Trainer and its callbacks (issue 11.3), live progress and the one-line run summary (issue 15.3), and the
record's environment fields (issue 12)."""

import json
import re

import pytest
import torch
import torch.nn as nn

from fgic import callbacks, runs
from fgic.callbacks import Callback, Checkpoint, Progress
from fgic.engine import NonFiniteLossError, TrainConfig, fit
from fgic.losses import create_loss
from fgic.losses.base import FGICLoss
from fgic.models import ClassifierNet
from fgic.runs import RunSpec
from fgic.trainer import Trainer
from tests.test_engine import NoisyFlip
from tests.test_engine import blobs as engine_blobs

CPU = dict(accelerator="cpu", weight_decay=0.0)


def tiny_net(num_classes=3):
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    return ClassifierNet(body, 8, num_classes, drop_rate=0.3)


def blobs(n=40, **kw):
    return engine_blobs(n=n, **kw)  # tests.test_engine's colour blobs, 40 images by default here


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_fit_start(self, trainer):
        self.events.append(("fit_start", trainer.epoch))

    def on_epoch_start(self, trainer, epoch):
        self.events.append(("epoch_start", epoch))

    def on_train_batch_end(self, trainer, step):
        self.events.append(("batch", step))

    def on_epoch_end(self, trainer, row):
        self.events.append(("epoch_end", dict(row)))

    def on_fit_end(self, trainer):
        self.events.append(("fit_end", trainer.epoch))


def _trainer(cfg, *cbs):
    torch.manual_seed(1)
    net = tiny_net()
    return Trainer(net, create_loss("center", 3, net.num_features), cfg, callbacks=list(cbs))


@pytest.mark.parametrize("k", [1, 2])
def test_stopped_and_resumed_run_equals_one_go(tmp_path, k):
    """Weights (model and loss), every final metric and the checkpoint of a run resumed after epoch k equal
    those of a run trained in one go."""
    ds = NoisyFlip(blobs())
    cfg = TrainConfig(epochs=3, batch_size=8, lr=0.05, eval_every=2, **CPU)
    whole = _trainer(cfg, Checkpoint(tmp_path / "whole.pt"))
    one_go = whole.fit(ds, ds, ds)
    part = _trainer(cfg, Checkpoint(tmp_path / "part.pt")).fit(ds, ds, ds, stop_after=k)
    assert not part["finished"] and [r["epoch"] for r in part["history"]] == list(range(1, k + 1))
    again = _trainer(cfg, Checkpoint(tmp_path / "part.pt"))  # fresh model and loss, continued from last.pt
    resumed = again.fit(ds, ds, ds)
    assert resumed["finished"] and resumed["metrics"] == one_go["metrics"]
    strip = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "train_img_s")} for r in h]
    assert strip(resumed["history"]) == strip(one_go["history"])
    for (name, a), b in zip(whole.module.state_dict().items(), again.module.state_dict().values()):
        assert torch.equal(a, b), name
    a, b = (torch.load(tmp_path / f, weights_only=True) for f in ("whole.pt", "part.pt"))
    assert a["epoch"] == b["epoch"] == 3 and strip(a["history"]) == strip(b["history"])
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    for i, s in a["optimizer"]["state"].items():
        assert all(torch.equal(v, b["optimizer"]["state"][i][n]) for n, v in s.items())


def test_callbacks_get_every_epoch_and_batch_event_in_order():
    rec = Recorder()
    cfg = TrainConfig(epochs=3, batch_size=8, **CPU)
    trainer = _trainer(cfg, rec)
    res = trainer.fit(blobs(n=24), blobs(n=24))
    kinds = [e[0] for e in rec.events]
    assert kinds == ["fit_start"] + ["epoch_start", "batch", "batch", "batch", "epoch_end"] * 3 + ["fit_end"]
    assert [e[1] for e in rec.events if e[0] == "epoch_start"] == [0, 1, 2]
    rows = [e[1] for e in rec.events if e[0] == "epoch_end"]
    assert rows == res["history"] and all("val_acc" in r for r in rows)
    assert trainer.epoch == 3 and trainer.steps_per_epoch == 3
    assert set(trainer.evaluate()) == {"val"} and trainer.evaluate()["val"]["top1"] == res["metrics"]["val_top1"]


def test_fit_end_runs_after_an_error_and_the_nan_guard_is_always_on():
    class NaNLoss(FGICLoss):
        def forward(self, out, target):
            return out.logits.sum() * float("nan")

    rec = Recorder()
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 1"):
        Trainer(tiny_net(), NaNLoss(), TrainConfig(epochs=2, batch_size=8, **CPU), callbacks=[rec]).fit(blobs())
    assert rec.events[-1] == ("fit_end", 0)


def test_save_and_resume_round_trip(tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=8, **CPU)
    a = _trainer(cfg)
    a.fit(blobs())
    a.save(tmp_path / "sub" / "c.pt")
    b = _trainer(cfg)
    b.fit(blobs(), stop_after=0)  # built, nothing trained
    b.resume(tmp_path / "sub" / "c.pt")
    assert b.epoch == 2 and b.history == a.history
    for (n, x), y in zip(a.module.state_dict().items(), b.module.state_dict().values()):
        assert torch.equal(x, y), n


class Bars:
    """Stands in for tqdm: records each bar's arguments and updates."""

    made: list = []

    def __init__(self, *a, **kw):
        self.kw, self.n = kw, 0
        Bars.made.append(self)

    def update(self, n=1):
        self.n += n

    def set_postfix(self, d):
        self.postfix = d

    def close(self):
        self.closed = True


@pytest.mark.parametrize("n, batch_bars", [(24 * 4, True), (5 * 4, False)], ids=["24-batches", "5-batches"])
def test_progress_shows_epochs_and_the_batches_of_long_epochs(monkeypatch, n, batch_bars):
    monkeypatch.setattr(callbacks, "tqdm", Bars)
    monkeypatch.setattr(Bars, "made", [])
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    fit(tiny_net(), create_loss("ce", 3), blobs(n=n), cfg=TrainConfig(epochs=2, batch_size=4, **CPU))
    epochs, *batches = Bars.made
    assert epochs.kw["desc"] == "epochs" and epochs.n == 2 and not epochs.kw["disable"] and epochs.closed
    assert "train_loss" in epochs.postfix
    if batch_bars:
        assert [b.kw["desc"] for b in batches] == ["epoch 1", "epoch 2"] and all(b.n == n // 4 for b in batches)
        assert all(b.closed and not b.kw["leave"] for b in batches)
    else:
        assert batches == []


@pytest.mark.parametrize("how", ["TQDM_DISABLE", "progress=False"])
def test_progress_is_quiet_headless_or_when_asked(monkeypatch, how):
    monkeypatch.setattr(callbacks, "tqdm", Bars)
    monkeypatch.setattr(Bars, "made", [])
    monkeypatch.setenv("TQDM_DISABLE", "1" if how == "TQDM_DISABLE" else "0")
    cfg = TrainConfig(epochs=1, batch_size=2, **CPU)
    fit(tiny_net(), create_loss("ce", 3), blobs(n=48), cfg=cfg, progress=how != "progress=False")
    assert Bars.made and all(b.kw["disable"] for b in Bars.made)


def test_progress_is_quiet_on_other_ranks(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    rank = lambda r: type("FakeTrainer", (), {"is_global_zero": r == 0})()
    assert not Progress(True).quiet(rank(0)) and Progress(True).quiet(rank(1)) and Progress(False).quiet(rank(0))


# ----------------------------------------------------------------------------- runs: summary line and env

DATA = {"num_classes": 3, "images_per_class": 4, "test_per_class": 2, "image_size": 32}


def spec(**train):
    return RunSpec(
        model="resnet18",
        model_kw={"width": 4},
        data_kw=DATA,
        transform_kw={"image_size": 32},
        train={"epochs": 1, "batch_size": 6, "lr": 0.01, "accelerator": "cpu", **train},
    )


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("FGIC_RUNS", str(tmp_path))
    return tmp_path


LINE = re.compile(r"^(\S+) seed (\d+): test top-1 (\d\.\d{3}), \d+\.\d s( \(reused\))?$")


def test_a_finished_run_prints_one_line_and_a_reused_one_says_so(runs_root, capsys):
    s = spec()
    rec = runs.train(s, group="t", name="net-a")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    m = LINE.match(lines[0])
    assert m and m[1] == "net-a" and m[2] == "0" and float(m[3]) == round(rec.metrics["test_top1"], 3) and not m[4]
    runs.train(s, group="t", name="net-a")
    (line,) = capsys.readouterr().out.splitlines()
    assert LINE.match(line)[4] == " (reused)"
    runs.train(s, group="t", progress=False)
    runs.train(spec(seed=1), group="t", progress=False, stop_after=1)  # nothing to say without progress
    assert capsys.readouterr().out == ""


def test_a_grid_prints_one_line_per_run(runs_root, capsys):
    runs.train(spec(), group="g", name="old", progress=False)
    runs.train_many([spec(), spec(seed=1)], group="g", names=["old", "new"], workers=1, plan=False)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(LINE.match(line) for line in lines), lines
    assert lines[0].startswith("old seed 0") and lines[0].endswith("(reused)")
    assert lines[1].startswith("new seed 1") and not lines[1].endswith("(reused)")


def test_environment_fields(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    env = runs.environment("cpu")
    assert env["num_threads"] == torch.get_num_threads()
    assert env["num_interop_threads"] == torch.get_num_interop_threads()
    assert env["deterministic_algorithms"] is torch.are_deterministic_algorithms_enabled()
    assert env["cudnn_deterministic"] is bool(torch.backends.cudnn.deterministic)
    assert env["cudnn_benchmark"] is bool(torch.backends.cudnn.benchmark)
    assert env["cuda_device"] is None and env["env_vars"] == {"OMP_NUM_THREADS": "3"}
    assert isinstance(env["cpu"], str) and env["cpu"]
    if torch.cuda.is_available():
        assert runs.environment("cuda")["cuda_device"] == torch.cuda.get_device_name()


def test_record_stores_env_outside_the_run_id(runs_root, monkeypatch):
    s = spec()
    run_id = s.run_id
    monkeypatch.setenv("MKL_NUM_THREADS", "2")
    rec = runs.train(s, group="t", progress=False)
    on_disk = json.loads((runs_root / "t" / run_id / "record.json").read_text())
    assert on_disk["env"] == json.loads(json.dumps(rec["env"])) and on_disk["env"]["env_vars"]["MKL_NUM_THREADS"] == "2"
    assert on_disk["env"]["num_threads"] == torch.get_num_threads()
    assert rec.run_id == run_id == RunSpec(**on_disk["params"]).run_id and "env" not in on_disk["params"]


def test_a_run_resumed_through_train_ends_with_the_same_weights_and_metrics(runs_root):
    s = spec(epochs=2)
    full = runs.train(s, group="full", progress=False)
    assert runs.train(s, group="part", progress=False, stop_after=1)["status"] == "interrupted"
    resumed = runs.train(s, group="part", progress=False)
    assert resumed.metrics == full.metrics and resumed.run_id == full.run_id
    a, b = (torch.load(r.dir / "final.pt", weights_only=True) for r in (full, resumed))
    for part in ("model", "criterion"):
        assert a[part].keys() == b[part].keys() and all(torch.equal(v, b[part][k]) for k, v in a[part].items())
