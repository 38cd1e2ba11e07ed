"""Bad inputs a new user makes (issue 14, item 13): each row gives the error type, a message that names the
culprit, and nothing written (no run folder, no record, no checkpoint, no figure, no change to the data)."""

import hashlib
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from fgic import engine, profiles, runs
from fgic.data.base import DatasetRootError, ImageListDataset, ImageReadError
from fgic.engine import CheckpointMismatchError, ConfigError, NonFiniteLossError, TrainConfig
from fgic.losses import create_loss
from fgic.losses.base import FGICLoss
from fgic.models import ClassifierNet
from fgic.runs import RunPathError, RunSpec, RunSpecError

DATA = {"num_classes": 3, "images_per_class": 6, "test_per_class": 4, "image_size": 32, "cache": False}
TRAIN = {"epochs": 1, "batch_size": 6, "lr": 0.01, "accelerator": "cpu"}


def spec(**kw):
    return RunSpec(**{"model": "resnet18", "data_kw": DATA, "transform_kw": {"image_size": 32}, "train": TRAIN, **kw})


def train_with(**train):
    return lambda tmp: lambda: runs.train(spec(train={**TRAIN, **train}), group="t", progress=False)


def spec_with(**kw):
    return lambda tmp: lambda: runs.train(spec(**kw), group="t", progress=False)


def in_group(group, **kw):
    return lambda tmp: lambda: runs.train(spec(), group=group, progress=False, **kw)


def notebooks(**kw):
    from fgic.notebooks import run_notebooks

    return lambda tmp: lambda: run_notebooks(**kw)


def missing_root(name):
    return lambda tmp: lambda: _build(name, tmp / "data")


def partial_root(name, *parts):
    """A root with the data set's folder and marker but nothing else."""

    def setup(tmp):
        for p in parts:
            path = tmp / "data" / p
            path.mkdir(parents=True) if not path.suffix else (path.parent.mkdir(parents=True), path.write_text("1 x\n"))
        return lambda: _build(name, tmp / "data")

    return setup


def _build(name, root):
    from fgic.data import build_dataset

    return build_dataset(name, root=root)


def tiny(k=3):
    return ClassifierNet(torch.nn.Conv2d(3, 4, 3, padding=1), 4, k)


def blobs(n=12):
    return TensorDataset(torch.randn(n, 3, 8, 8), torch.arange(n) % 3)


class ScaledLoss(FGICLoss):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, out, target):
        return out.logits.sum() * self.factor


def non_finite(factor):
    cfg = TrainConfig(epochs=1, batch_size=4, accelerator="cpu")
    return lambda tmp: (
        lambda: engine.fit(tiny(), ScaledLoss(factor), blobs(), cfg=cfg, checkpoint=tmp / "last.pt", progress=False)
    )


def resume_other_class_count(tmp):
    cfg = TrainConfig(epochs=1, batch_size=4, accelerator="cpu")
    engine.fit(tiny(3), create_loss("ce", 3), blobs(), cfg=cfg, checkpoint=tmp / "last.pt", progress=False)
    cfg2 = TrainConfig(epochs=2, batch_size=4, accelerator="cpu")
    return lambda: engine.fit(tiny(5), create_loss("ce", 5), blobs(), cfg=cfg2, checkpoint=tmp / "last.pt")


def load_other_class_count(tmp):
    torch.save({"model": tiny(3).state_dict()}, tmp / "final.pt")
    state = torch.load(tmp / "final.pt", weights_only=True)["model"]
    return lambda: engine.load_module_state(tiny(5), state, tmp / "final.pt")


def empty_split(tmp):
    empty = TensorDataset(torch.zeros(0, 3, 8, 8), torch.zeros(0, dtype=torch.long))
    return lambda: engine.fit(tiny(), create_loss("ce", 3), empty, cfg=TrainConfig(epochs=1, accelerator="cpu"))


def image_list(kind):
    def setup(tmp):
        path = tmp / "data" / "img_0001.jpg"
        path.parent.mkdir()
        if kind == "truncated":
            buf = io.BytesIO()
            Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)).save(buf, "JPEG")
            path.write_bytes(buf.getvalue()[:300])
        elif kind == "not an image":
            path.write_text("<html>404 not found</html>")
        ds = ImageListDataset([(str(path), 0)], ["a"])
        return lambda: ds[0]

    return setup


def yaml_file(text):
    def setup(tmp):
        (tmp / "02_scra.yaml").write_text(text)
        return lambda: profiles._load(tmp / "02_scra.yaml", "smoke")

    return setup


def nonempty_model(tmp):
    return lambda: RunSpec(model="")


ROWS = [
    # TrainConfig: types and ranges, checked before anything is built or written
    ("lr as a string", train_with(lr="0.1"), ConfigError, "lr='0.1'"),
    ("eval_every 0", train_with(eval_every=0), ConfigError, "eval_every=0"),
    ("seed as a string", train_with(seed="0"), ConfigError, "seed='0'"),
    ("epochs 0", train_with(epochs=0), ConfigError, "epochs=0"),
    ("epochs negative", train_with(epochs=-3), ConfigError, "epochs=-3"),
    ("epochs fractional", train_with(epochs=2.5), ConfigError, "epochs=2.5"),
    ("batch_size 0", train_with(batch_size=0), ConfigError, "batch_size=0"),
    ("unknown optimizer", train_with(optimizer="sgdd"), ConfigError, "optimizer 'sgdd'"),
    ("unknown schedule", train_with(schedule="poly"), ConfigError, "schedule 'poly'"),
    ("negative momentum", train_with(momentum=-0.5), ConfigError, "momentum=-0.5"),
    ("negative weight decay", train_with(weight_decay=-1e-4), ConfigError, "weight_decay=-0.0001"),
    ("lr nan", train_with(lr=float("nan")), ConfigError, "lr=nan"),
    ("lr inf", train_with(lr=float("inf")), ConfigError, "lr=inf"),
    ("nesterov as a string", train_with(nesterov="yes"), ConfigError, "nesterov='yes'"),
    ("compile as a string", train_with(compile="no"), ConfigError, "compile='no'"),
    ("unknown precision", train_with(precision="fp8"), ConfigError, "precision 'fp8'"),
    ("milestone 0", train_with(schedule="multistep", milestones=[0, 5]), ConfigError, "milestones"),
    ("step schedule without step", train_with(schedule="step"), ConfigError, "step_size=0"),
    ("devices 0", train_with(devices=0), ConfigError, "devices=0"),
    ("negative workers", train_with(num_workers=-1), ConfigError, "num_workers=-1"),
    ("unknown training key", train_with(epochz=3), TypeError, "epochz"),
    # RunSpec fields
    ("train not a dict", spec_with(train="fast"), RunSpecError, "RunSpec.train='fast'"),
    ("model not a string", spec_with(model=18), RunSpecError, "RunSpec.model=18"),
    ("model empty", nonempty_model, RunSpecError, "RunSpec.model=''"),
    ("model_kw a list", spec_with(model_kw=[("width", 8)]), RunSpecError, "RunSpec.model_kw"),
    ("pretrained None", spec_with(pretrained=None), RunSpecError, "RunSpec.pretrained=None"),
    # unknown names, with suggestions
    ("unknown model", spec_with(model="resnet81"), KeyError, "'resnet81'.*did you mean.*'resnet18'"),
    ("unknown loss", spec_with(loss="centre"), KeyError, "'centre'.*did you mean.*'center'"),
    ("unknown data set", spec_with(dataset="cub2011"), KeyError, "'cub2011'.*did you mean.*'cub'"),
    ("unknown transform", spec_with(transform="fancy"), KeyError, "'fancy'"),
    ("unknown regularizer", spec_with(regularizer={"name": "l3sp"}), KeyError, "'l3sp'"),
    # image size
    ("image size 0", spec_with(transform_kw={"image_size": 0}), ValueError, "image_size=0"),
    ("image size as a string", spec_with(transform_kw={"image_size": "64"}), ValueError, "image_size='64'"),
    # run groups stay inside runs/
    ("group ..", in_group("../x"), RunPathError, "'../x'"),
    ("group absolute", in_group("/tmp/x"), RunPathError, "'/tmp/x'"),
    ("group .. inside", in_group("a/../../x"), RunPathError, "'a/../../x'"),
    ("group empty", in_group(""), RunPathError, "''"),
    # booleans and papermill parameters
    ("retrain 'maybe'", in_group("t", retrain="maybe"), ValueError, "retrain='maybe'"),
    ("papermill RETRAIN 'perhaps'", notebooks(retrain="perhaps"), ValueError, "retrain='perhaps'"),
    ("papermill unknown profile", notebooks(profile="smokey"), ValueError, "'smokey'"),
    ("unknown notebook", notebooks(names=["99_nope"]), FileNotFoundError, "99_nope"),
    # data roots: missing, and partial (the marker but not the rest)
    *[
        (f"missing root {n}", missing_root(n), DatasetRootError, f"{n}.*root=.*data")
        for n in ("cub", "cars", "aircraft", "dogs", "flowers102", "foodx251", "cub_aircraft")
    ],
    ("partial root cub", partial_root("cub", "CUB_200_2011/images.txt"), DatasetRootError, "missing classes.txt"),
    ("partial root aircraft", partial_root("aircraft", "fgvc-aircraft-2013b/data"), DatasetRootError, "missing"),
    ("partial root cars", partial_root("cars", "stanford_cars/devkit"), DatasetRootError, "missing"),
    ("partial root dogs", partial_root("dogs", "stanford_dogs/Images"), DatasetRootError, "missing"),
    ("partial root flowers", partial_root("flowers102", "flowers-102/setid.mat"), DatasetRootError, "missing jpg"),
    ("partial root foodx", partial_root("foodx251", "foodx251/class_list.txt"), DatasetRootError, "missing"),
    # image files
    ("truncated JPEG", image_list("truncated"), ImageReadError, "img_0001.jpg"),
    ("HTML saved as .jpg", image_list("not an image"), ImageReadError, "img_0001.jpg"),
    ("listed image missing", image_list("missing"), ImageReadError, "img_0001.jpg"),
    # checkpoints and training
    ("resume with another class count", resume_other_class_count, CheckpointMismatchError, "last.pt.*3.*5|5.*3"),
    ("load with another class count", load_other_class_count, CheckpointMismatchError, "final.pt"),
    ("NaN loss", non_finite(float("nan")), NonFiniteLossError, "nan at epoch 1"),
    ("inf loss", non_finite(float("inf")), NonFiniteLossError, "inf at epoch 1"),
    ("empty training split", empty_split, ValueError, "training split is empty"),
    # settings files
    ("broken YAML", yaml_file("smoke:\n  epochs: [1, 2\n"), ValueError, "02_scra.yaml"),
    ("YAML not a mapping", yaml_file("- smoke\n- default\n"), ValueError, "02_scra.yaml.*mapping"),
]


def _snapshot(folder):
    return {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_the_table_is_large_enough():
    assert len(ROWS) >= 40 and len({r[0] for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("setup, error, culprit", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(tmp_path, monkeypatch, setup, error, culprit):
    monkeypatch.setenv("FGIC_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("FGIC_FIGURES", str(tmp_path / "figures"))
    monkeypatch.delenv("FGIC_DATA", raising=False)
    call = setup(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(error) as e:
        call()
    assert re.search(culprit, str(e.value), re.S), f"the message does not name {culprit!r}: {e.value}"
    assert _snapshot(tmp_path) == before, "a bad input wrote or changed files"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*"))
