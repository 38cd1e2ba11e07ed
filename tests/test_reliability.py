"""Reliability (issue 14): strict inputs, contained paths, image modes, and what survives failures and kills."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgic import engine, paths, profiles, runs, viz
from fgic.data.base import ImageReadError, load_rgb
from fgic.runs import RunSpec

DATA = {"num_classes": 3, "images_per_class": 6, "test_per_class": 4, "image_size": 32, "cache": False}
TRAIN = {"epochs": 3, "batch_size": 6, "lr": 0.01, "accelerator": "cpu"}


def spec(**train):
    return RunSpec(model="resnet18", data_kw=DATA, transform_kw={"image_size": 32}, train={**TRAIN, **train})


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("FGIC_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


# ----------------------------------------------------------------------------- 14.2 strict booleans


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, True),
        (False, False),
        ("no", False),
        ("No", False),
        ("false", False),
        ("0", False),
        (0, False),
        ("yes", True),
        ("TRUE", True),
        ("1", True),
        (1, True),
    ],
)
def test_parse_bool_is_strict(value, expected):
    assert profiles.parse_bool(value, "RETRAIN") is expected


@pytest.mark.parametrize("value", ["maybe", "", 2, None, 0.5, "nein"])
def test_parse_bool_rejects_anything_else(value):
    with pytest.raises(ValueError, match="RETRAIN"):
        profiles.parse_bool(value, "RETRAIN")


def test_retrain_no_from_papermill_does_not_retrain(runs_root, monkeypatch):
    s = spec(epochs=1)
    runs.train(s, group="t", progress=False)
    monkeypatch.setattr(runs, "fit", lambda *a, **k: pytest.fail("retrain='no' retrained the run"))
    assert runs.train(s, group="t", retrain="no", progress=False)["status"] == "finished"
    assert runs.train_many([s], group="t", retrain="false", workers=1, progress=False)[0]["status"] == "finished"


# ----------------------------------------------------------------------------- 14.3 paths stay inside runs/


@pytest.mark.parametrize("group", ["../x", "a/../../x", "/tmp/abs", "~/x", ""])
def test_group_cannot_leave_the_runs_folder(runs_root, tmp_path, group):
    victim = tmp_path / "x" / spec().run_id
    victim.mkdir(parents=True)
    (victim / "keep.txt").write_text("precious")
    with pytest.raises(runs.RunPathError, match="group"):
        runs.train(spec(), group=group, retrain=True, progress=False)
    assert (victim / "keep.txt").read_text() == "precious"  # retrain deleted nothing outside runs/
    assert not runs_root.exists() or not any(runs_root.rglob("*"))


def test_group_through_a_symlink_out_of_runs_is_rejected(runs_root, tmp_path):
    runs_root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (runs_root / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(runs.RunPathError, match="outside the runs folder"):
        runs.run_dir("link", "abc")
    assert runs.run_dir("nested/group", "abc") == runs_root / "nested" / "group" / "abc"


# ----------------------------------------------------------------------------- 14.4 images of every mode


def _save(tmp_path, im, name):
    p = tmp_path / name
    im.save(p)
    return p


def _modes(tmp_path):
    """(file, expected RGB of pixel (0, 0)) for each PIL mode a real data set can contain."""
    pal = Image.new("P", (2, 2))
    pal.putpalette([0, 0, 0, 200, 10, 30] + [0] * 762)
    pal.putpixel((0, 0), 1)
    pal_t = pal.copy()
    pal_t.info["transparency"] = 1  # index 1 fully transparent -> white
    return {
        "L": (_save(tmp_path, Image.new("L", (2, 2), 77), "l.png"), (77, 77, 77)),
        "LA": (_save(tmp_path, Image.new("LA", (2, 2), (100, 0)), "la.png"), (255, 255, 255)),
        "P": (_save(tmp_path, pal, "p.png"), (200, 10, 30)),
        "P+transparency": (_save(tmp_path, pal_t, "pt.png"), (255, 255, 255)),
        "RGBA": (_save(tmp_path, Image.new("RGBA", (2, 2), (0, 0, 255, 128)), "rgba.png"), (127, 127, 255)),
        "CMYK": (_save(tmp_path, Image.new("CMYK", (2, 2), (0, 255, 255, 0)), "cmyk.tiff"), (255, 0, 0)),
        "I;16": (_save(tmp_path, Image.fromarray(np.full((2, 2), 32896, np.uint16)), "i16.png"), (128, 128, 128)),
        "I": (_save(tmp_path, Image.fromarray(np.full((2, 2), 32896, np.int32)), "i32.tiff"), (128, 128, 128)),
        "F": (_save(tmp_path, Image.fromarray(np.full((2, 2), 0.5, np.float32)), "f.tiff"), (128, 128, 128)),
    }


@pytest.mark.parametrize("mode", ["L", "LA", "P", "P+transparency", "RGBA", "CMYK", "I;16", "I", "F"])
def test_every_image_mode_converts_to_the_right_rgb(tmp_path, mode):
    path, rgb = _modes(tmp_path)[mode]
    assert Image.open(path).mode == mode.split("+")[0]
    im = load_rgb(path)
    assert im.mode == "RGB" and im.getpixel((0, 0)) == rgb


def test_truncated_jpeg_names_the_file(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(buf, "JPEG")
    bad = tmp_path / "Black_Footed_Albatross_0001.jpg"
    bad.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="Black_Footed_Albatross_0001.jpg"):
        load_rgb(bad)


def test_yaml_error_names_the_file(tmp_path):
    bad = tmp_path / "01_acanet.yaml"
    bad.write_text("smoke:\n  epochs: [1, 2\n")
    with pytest.raises(ValueError, match="01_acanet.yaml"):
        profiles._load(bad, "smoke")


@pytest.mark.parametrize(
    "make, wrong, right",
    [("model", "resnet81", "resnet18"), ("loss", "centre", "center"), ("dataset", "cub2011", "cub")],
)
def test_unknown_names_suggest_the_close_ones(make, wrong, right):
    from fgic.data import build_dataset
    from fgic.losses import create_loss
    from fgic.models import create_model

    call = {
        "model": lambda: create_model(wrong, 3),
        "loss": lambda: create_loss(wrong, 3, 8),
        "dataset": lambda: build_dataset(wrong),
    }[make]
    with pytest.raises(KeyError) as e:
        call()
    msg = str(e.value)
    assert wrong in msg and "did you mean" in msg and f"'{right}'" in msg.split("did you mean")[1][:80]


# ----------------------------------------------------------------------------- 14.5, 14.7, 14.8: records


def _failing_fit(n_ok):
    """A stand-in for fit: completes ``n_ok`` epochs (checkpoint, then the record's callback), then fails."""

    def fake(model, criterion, train_ds, val_ds, test_ds, cfg, *, checkpoint, on_epoch, **kw):
        rows = []
        for e in range(n_ok):
            rows.append({"epoch": e + 1, "train_loss": 1.0 / (e + 1), "seconds": 0.01})
            engine.save_atomic({"module": {}, "optimizer": {}, "history": rows, "epoch": e + 1}, checkpoint)
            on_epoch(rows[-1])
        raise engine.NonFiniteLossError(f"loss became nan at epoch {n_ok + 1}, step 3")

    return fake


def test_failed_run_keeps_its_completed_epochs(runs_root, monkeypatch):
    monkeypatch.setattr(runs, "fit", _failing_fit(2))
    s = spec()
    with pytest.raises(engine.NonFiniteLossError):
        runs.train(s, group="t", progress=False)
    rec = json.loads((runs_root / "t" / s.run_id / "record.json").read_text())
    assert rec["status"] == "failed" and "nan" in rec["error"]
    assert [h["epoch"] for h in rec["history"]] == [1, 2] and rec["last_epoch"] == 2
    assert rec["wall_time"] > 0


def test_resume_keeps_first_start_and_sums_training_time(runs_root, monkeypatch):
    stamps = iter(f"2026-01-01T00:00:{i:02d}+0000" for i in range(60))
    real_strftime = time.strftime
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: next(stamps) if "%S" in fmt else real_strftime(fmt, *a))
    s = spec()
    part = runs.train(s, group="t", progress=False, stop_after=1)
    assert part["status"] == "interrupted" and part["last_epoch"] == 1
    done = runs.train(s, group="t", progress=False)
    assert done["status"] == "finished" and done["started"] == part["started"]
    assert done["wall_time"] > part["wall_time"] > 0
    assert done["history"][0] == part["history"][0]


def test_checkpoint_is_saved_before_the_record_callback(tmp_path):
    """A kill between the two writes leaves the record behind the checkpoint, never ahead of it."""
    from torch.utils.data import TensorDataset

    from fgic.losses import create_loss
    from fgic.models import ClassifierNet

    seen = []
    ckpt = tmp_path / "last.pt"
    on_epoch = lambda row: seen.append((row["epoch"], torch.load(ckpt, weights_only=True)["epoch"]))
    cfg = engine.TrainConfig(epochs=2, batch_size=8, accelerator="cpu")
    net = ClassifierNet(torch.nn.Conv2d(3, 4, 3), 4, 3)
    data = TensorDataset(torch.randn(16, 3, 8, 8), torch.arange(16) % 3)
    engine.fit(net, create_loss("ce", 3), data, cfg=cfg, checkpoint=ckpt, on_epoch=on_epoch, progress=False)
    assert seen == [(1, 1), (2, 2)]


def test_a_record_behind_its_checkpoint_is_caught_up_on_the_next_start(runs_root, monkeypatch):
    s = spec()
    runs.train(s, group="t", progress=False, stop_after=2)
    d = runs_root / "t" / s.run_id
    rec = json.loads((d / "record.json").read_text())
    behind = {**rec, "history": rec["history"][:1], "last_epoch": 1, "status": "running"}  # killed between writes
    (d / "record.json").write_text(json.dumps(behind))
    assert runs.check_run(d) and "disagrees" in runs.check_run(d)[0]
    captured = {}

    def stop(*a, on_epoch, **k):  # look at the record as the resumed run starts, then stop like a kill
        captured.update(json.loads((d / "record.json").read_text()))
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "fit", stop)
    with pytest.raises(KeyboardInterrupt):
        runs.train(s, group="t", progress=False)
    assert captured["last_epoch"] == 2 and captured["history"] == rec["history"]
    assert captured["wall_time"] == rec["wall_time"] > 0  # a kill right now would keep the earlier training time
    assert runs.check_run(d) == []


# ----------------------------------------------------------------------------- 14.9 orphans and fsync


def test_orphaned_tmp_files_are_removed_on_the_next_start(runs_root):
    s = spec()
    runs.train(s, group="t", progress=False, stop_after=1)
    d = runs_root / "t" / s.run_id
    for name in (".last.pt.tmp4242", ".record.json.tmp4242", ".final.pt.tmp77"):
        (d / name).write_bytes(b"half a file")
    assert len(runs.orphans(d)) == 3
    runs.train(s, group="t", progress=False)
    assert runs.orphans(d) == [] and runs.check_run(d) == []


def test_atomic_writes_fsync_the_file_and_its_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    engine.save_atomic({"a": torch.ones(2)}, tmp_path / "last.pt")
    engine.write_atomic("{}", tmp_path / "record.json")
    assert any(".last.pt.tmp" in p for p in synced) and any(".record.json.tmp" in p for p in synced)
    assert synced.count(str(tmp_path)) == 2  # the folder, after each rename
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "record.json"]


# ----------------------------------------------------------------------------- 14.10 one process per run


def test_a_second_trainer_of_the_same_run_reports_the_holder(runs_root):
    s = spec(epochs=1)
    d = runs_root / "t" / s.run_id
    with runs.run_lock(d):
        with pytest.raises(runs.RunLockedError, match=f"pid {os.getpid()}"):
            runs.train(s, group="t", progress=False, lock_timeout=0.2)
    assert not (d / "record.json").exists()


def test_lock_of_a_killed_process_does_not_block(runs_root):
    s = spec(epochs=1)
    d = runs_root / "t" / s.run_id
    d.mkdir(parents=True)
    code = "import fcntl,sys,time; f=open(sys.argv[1],'a'); fcntl.flock(f, 2); print(1, flush=True); time.sleep(60)"
    p = subprocess.Popen([sys.executable, "-c", code, str(d / ".lock")], stdout=subprocess.PIPE, text=True)
    p.stdout.readline()
    with pytest.raises(runs.RunLockedError), runs.run_lock(d, timeout=0):
        pass
    p.kill()
    p.wait()
    assert runs.train(s, group="t", progress=False, lock_timeout=0)["status"] == "finished"


# ----------------------------------------------------------------------------- 14.6 SIGTERM


def test_sigterm_marks_the_run_interrupted_and_the_next_call_resumes(runs_root):
    s = spec(epochs=40)
    d = runs_root / "t" / s.run_id
    code = (
        "import sys, torch; torch.set_num_threads(1); from fgic import runs; "
        "runs.train(runs.RunSpec(**__import__('json').loads(sys.argv[1])), group='t', progress=False)"
    )
    env = {**os.environ, "FGIC_RUNS": str(runs_root), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.Popen([sys.executable, "-c", code, json.dumps(s.to_dict())], env=env, stderr=subprocess.PIPE)
    for _ in range(1200):  # until the first epoch is recorded
        if (d / "record.json").is_file() and json.loads((d / "record.json").read_text()).get("last_epoch", 0) >= 1:
            break
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=120) != 0
    rec = json.loads((d / "record.json").read_text())
    assert rec["status"] == "interrupted" and "SIGTERM" in rec["error"]
    assert rec["last_epoch"] == len(rec["history"]) >= 1 and runs.check_run(d) == []
    part = rec["last_epoch"]
    # the next call resumes from that epoch (stop one epoch later to keep the test short)
    again = runs.train(s, group="t", progress=False, stop_after=1)
    assert again["last_epoch"] == part + 1 and again["history"][:part] == rec["history"]
    assert again["started"] == rec["started"]


# ----------------------------------------------------------------------------- 14.11 figures per profile


def test_smoke_profile_figures_never_overwrite_the_default_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("FGIC_FIGURES", str(tmp_path))
    monkeypatch.setattr(paths, "_active_profile", None)
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1])
    assert viz.savefig(fig, "01_acanet_table2") == tmp_path / "01_acanet_table2.png"
    profiles.resolve_profile("smoke")
    assert viz.savefig(fig, "01_acanet_table2") == tmp_path / "smoke" / "01_acanet_table2.png"
    profiles.resolve_profile("default")
    assert paths.figures_dir() == tmp_path
    profiles.settings("01_acanet", "paper")  # reading another profile's settings does not switch
    assert paths.figures_dir() == tmp_path


# ----------------------------------------------------------------------------- 14.12 kills (fast variant)


def test_two_kills_resume_bit_identically(tmp_path):
    from fgic.bench.killtest import killtest

    res = killtest(kills=2, epochs=6, seed=1, runs_root=tmp_path)
    assert res["kills"] == 2 and res["in_write"] == 1 and res["random"] == 1
    assert res["corrupt"] == [] and res["orphans_after_restart"] == 0 and res["problems"] == []
    assert res["status"] == "finished" and res["identical"]


@pytest.mark.slow
def test_twenty_kills_resume_bit_identically(tmp_path):
    from fgic.bench.killtest import killtest

    res = killtest(kills=20, seed=0, runs_root=tmp_path)
    assert res["kills"] == 20 and res["in_write"] == 10
    assert res["corrupt"] == [] and res["orphans_after_restart"] == 0 and res["problems"] == []
    assert res["status"] == "finished" and res["identical"]
