"""Run records: provenance, caching, retrain, clean failure, resume through ``train``, model reload."""

import json

import pytest
import torch

from fgic import runs
from fgic.runs import RunSpec

DATA = {"num_classes": 3, "images_per_class": 6, "test_per_class": 4, "image_size": 32}


def spec(**kw):
    base = dict(
        model="resnet18",
        data_kw=DATA,
        transform_kw={"image_size": 32},
        train={"epochs": 2, "batch_size": 6, "lr": 0.01, "accelerator": "cpu"},
    )
    base.update(kw)
    return RunSpec(**base)


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("FGIC_RUNS", str(tmp_path))
    return tmp_path


def test_run_id_is_a_content_hash():
    a, b = spec(), spec()
    assert a.run_id == b.run_id and len(a.run_id) == 12
    assert spec(train={**a.train, "seed": 1}).run_id != a.run_id
    assert RunSpec(**json.loads(json.dumps(a.to_dict()))).run_id == a.run_id


def test_train_writes_a_full_record_then_reuses_it(runs_root, monkeypatch):
    s = spec()
    rec = runs.train(s, group="t", name="baseline", progress=False)
    d = runs_root / "t" / s.run_id
    on_disk = json.loads((d / "record.json").read_text())
    for key in (
        "params",
        "seed",
        "commit",
        "dirty",
        "code_hash",
        "versions",
        "device",
        "history",
        "metrics",
        "wall_time",
        "status",
        "num_classes",
        "sizes",
        "started",
        "last_epoch",
        "loss_weight_decay",
        "train_img_s",
        "peak_memory_mb",
    ):
        assert key in on_disk, key
    assert on_disk["status"] == "finished" and len(on_disk["history"]) == 2 and on_disk["last_epoch"] == 2
    assert on_disk["loss_weight_decay"] == 5e-4  # cross-entropy has no parameters: the model's decay
    # 6 images per class, val_fraction 0.1: round(0.6) = 1 held out per class; 4 test images per class
    assert on_disk["sizes"] == {"train": 3 * 5, "val": 3 * 1, "test": 3 * 4}
    m, last = on_disk["metrics"], on_disk["history"][-1]
    conf = torch.tensor(m["confusion"])  # of the test split
    assert conf.sum(1).tolist() == [4, 4, 4] and m["test_top1"] == pytest.approx(int(conf.trace()) / 12)
    assert m["test_top1"] == last["test_acc"] and m["val_top1"] == last["val_acc"]
    assert m["val_top1"] * 3 == pytest.approx(round(m["val_top1"] * 3))  # k of the 3 val images
    assert m["test_top5"] == m["val_top5"] == 1.0  # 3 classes: the top 5 hold every class
    assert on_disk["train_img_s"] > 0 and on_disk["peak_memory_mb"] > 0
    assert on_disk["versions"]["torch"] == torch.__version__

    def boom(*a, **k):
        raise AssertionError("a finished run must not be retrained")

    monkeypatch.setattr(runs, "fit", boom)
    again = runs.train(s, group="t", progress=False)
    assert again.run_id == rec.run_id and again.metrics == rec.metrics
    with pytest.raises(AssertionError, match="must not be retrained"):
        runs.train(s, group="t", retrain=True, progress=False)


def test_bad_spec_leaves_nothing_behind(runs_root):
    with pytest.raises(KeyError, match="unknown model"):
        runs.train(spec(model="no_such_net"), group="t", progress=False)
    with pytest.raises(TypeError, match="unknown TrainConfig keys"):
        runs.train(spec(train={"epochz": 3}), group="t", progress=False)
    assert not any(runs_root.rglob("*"))


def test_interrupted_run_resumes_to_the_same_result(runs_root):
    s = spec(train={"epochs": 3, "batch_size": 6, "lr": 0.01, "accelerator": "cpu"})
    full = runs.train(s, group="full", progress=False)
    part = runs.train(s, group="part", progress=False, stop_after=1)
    assert part["status"] == "interrupted" and runs.find(s, "part") is None
    resumed = runs.train(s, group="part", progress=False)
    assert resumed["status"] == "finished"
    drop = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "train_img_s")} for r in h]
    assert drop(resumed.history) == drop(full.history)
    assert resumed.metrics["test_top1"] == full.metrics["test_top1"]


def test_load_model_reproduces_the_recorded_accuracy(runs_root):
    s = spec()
    rec = runs.train(s, group="t", progress=False)
    model = rec.load_model()
    _, _, test = runs.build_data(s)
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.tensor([test[i][1] for i in range(len(test))])
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(rec.metrics["test_top1"])
    assert list(runs.summary([rec]).columns)[:4] == ["run", "name", "val_top1", "test_top1"]


def test_train_many_in_two_processes_matches_one_by_one(runs_root):
    specs = [spec(train={"epochs": 1, "batch_size": 6, "lr": lr, "accelerator": "cpu"}) for lr in (0.01, 0.02)]
    par = runs.train_many(specs, group="par", names=["a", "b"], workers=2, progress=False)
    seq = runs.train_many(specs, group="seq", workers=1, progress=False)
    assert [r.run_id for r in par] == [s.run_id for s in specs] and [r["name"] for r in par] == ["a", "b"]
    for p, s in zip(par, seq):
        assert p.metrics["test_top1"] == s.metrics["test_top1"]
        assert p.history[0]["train_loss"] == pytest.approx(s.history[0]["train_loss"], rel=1e-5)


def test_record_on_disk_grows_during_training(runs_root):
    s = spec(train={"epochs": 3, "batch_size": 6, "lr": 0.01, "accelerator": "cpu"})
    runs.train(s, group="live", progress=False, stop_after=2)
    on_disk = json.loads((runs_root / "live" / s.run_id / "record.json").read_text())
    assert on_disk["status"] == "interrupted" and [h["epoch"] for h in on_disk["history"]] == [1, 2]


def test_run_id_follows_the_data_and_the_pinned_thread_count(tmp_path, monkeypatch):
    """A changed data set (here: a new generator version) or a pinned thread count is a different run id;
    list_records says which stored records no longer match the data on this machine."""
    import json

    from fgic.data import fingerprint, synthetic
    from fgic.runs import RunSpec, list_records

    monkeypatch.setenv("FGIC_RUNS", str(tmp_path))
    spec = RunSpec(model="resnet18", data_kw={"num_classes": 3, "image_size": 32})
    d = tmp_path / "g" / spec.run_id
    d.mkdir(parents=True)
    (d / "record.json").write_text(json.dumps({"run_id": spec.run_id, "params": spec.to_dict(), "status": "finished",
                                               "metrics": {"test_top1": 0.5}}))
    assert list_records("g")["matches"].tolist() == [True]
    assert RunSpec(model="resnet18", data_kw=spec.data_kw, train={"threads": 1}).run_id != spec.run_id
    old = spec.run_id
    monkeypatch.setattr(synthetic, "VERSION", synthetic.VERSION + 1)
    fingerprint.clear()
    try:
        assert spec.run_id != old and list_records("g")["matches"].tolist() == [False]
    finally:
        monkeypatch.undo()
        fingerprint.clear()


def test_a_pinned_thread_count_is_applied_while_training_and_recorded(tmp_path, monkeypatch):
    import torch

    from fgic.runs import RunSpec, train
    from fgic.trainer import Trainer

    monkeypatch.setenv("FGIC_RUNS", str(tmp_path))
    before = torch.get_num_threads()
    spec = RunSpec(model="resnet18", model_kw={"width": 8}, data_kw={"num_classes": 3, "images_per_class": 6,
                   "test_per_class": 2, "image_size": 32}, transform_kw={"image_size": 32},
                   train={"epochs": 1, "batch_size": 6, "max_steps": 1, "threads": before + 1})
    seen, orig = [], Trainer.run_epoch

    def spy(self, epoch):
        seen.append(torch.get_num_threads())
        return orig(self, epoch)

    monkeypatch.setattr(Trainer, "run_epoch", spy)
    rec = train(spec, "g", progress=False)
    assert seen == [before + 1] and rec["env"]["num_threads"] == before + 1 and torch.get_num_threads() == before
    assert rec["data"]["dataset"] == "synthetic" and rec["data"]["hash"] == spec.data_identity()["hash"] != "missing"
