"""The plan before work (``fgic.plan``), offline weights, ``train_many``'s executors, keep-going and workers."""

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from fgic import runs
from fgic.models import create_model
from fgic.models.pretrained import PretrainedWeightsError, weights_dir
from fgic.plan import PlanError, check
from fgic.runs import GridError, RunSpec, make_executor, train_many

DATA = {"num_classes": 3, "images_per_class": 4, "test_per_class": 2, "image_size": 32}
TRAIN = {"epochs": 1, "batch_size": 6, "lr": 0.01, "accelerator": "cpu"}


def spec(**kw):
    base = dict(model="resnet18", model_kw={"width": 4}, data_kw=DATA, transform_kw={"image_size": 32}, train=TRAIN)
    return RunSpec(**{**base, **kw})


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No weights anywhere, downloads off, and any connection attempt fails the test."""
    monkeypatch.setenv("FGIC_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("FGIC_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("FGIC_ALLOW_DOWNLOAD", "0")

    def no_network(*a, **k):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return tmp_path


@pytest.mark.parametrize(
    "model", ["resnet50", "convnextv2_large", "gholm_convnext_small", "resnet50_csca_units", "vgg16_bn_ma_top", "vgg16"]
)
def test_offline_weight_error_is_immediate_and_names_the_local_path(offline, model):
    create_model("resnet18", num_classes=2)  # imports every model module (not part of the look-up)
    t0 = time.perf_counter()
    with pytest.raises(PretrainedWeightsError) as e:
        create_model(model, num_classes=5, pretrained=True)
    assert time.perf_counter() - t0 < 1.0
    msg = str(e.value)
    assert "FGIC_ALLOW_DOWNLOAD=0" in msg and str(weights_dir()) in msg
    if "convnext" in model:  # timm: the Hugging Face repository, the tag and the file
        assert "repository timm/" in msg and "tag " in msg and "model.safetensors" in msg
    else:  # torchvision: the file name under the weights folder
        assert ".pth" in msg and "download.pytorch.org" in msg


def test_weights_put_in_the_weights_folder_are_used(offline):
    import torchvision

    net = torchvision.models.resnet18()
    name = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    weights_dir().mkdir(parents=True)
    torch.save(net.state_dict(), weights_dir() / name)
    assert check([spec(model="resnet18", model_kw={}, pretrained=True)]) == []
    model = create_model("resnet18", num_classes=5, pretrained=True)
    assert torch.equal(model.state_dict()["features.conv1.weight"], net.conv1.weight)


def test_the_check_lists_every_missing_piece_at_once_and_trains_nothing(offline):
    grid = [
        spec(dataset="cub", data_kw={"root": str(offline / "no-cub")}),
        spec(dataset="cars", data_kw={"root": str(offline / "no-cars")}),
        spec(model="resnet50", model_kw={}, pretrained=True),
        spec(model="convnextv2_large", model_kw={}, pretrained=True),
        spec(),  # fine
    ]
    with pytest.raises(PlanError) as e:
        train_many(grid, group="g", names=["a", "b", "c", "d", "e"], workers=1)
    msg = str(e.value)
    assert msg.startswith("4 missing piece(s) for the 5 run(s)")
    for piece in (
        "data set 'cub'",
        "no-cub",
        "data set 'cars'",
        "weights of 'resnet50'",
        "weights of 'convnextv2_large'",
    ):
        assert piece in msg, piece
    assert not (offline / "runs" / "g").exists()  # nothing was started


def test_plan_is_printed_and_workers_never_exceed_the_cores(offline, monkeypatch, capsys):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    recs = train_many([spec(), spec(train={**TRAIN, "seed": 1})], group="g", workers=4)
    out = capsys.readouterr().out
    assert "plan for runs/g: 2 to train, 0 reused; device cpu (1 cores), 1 worker(s), estimated" in out
    assert [r["status"] for r in recs] == ["finished", "finished"]
    train_many([spec()], group="g")
    assert "0 to train, 1 reused" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal of the paper profile")
def test_paper_profile_on_a_cpu_needs_allow_cpu(offline, capsys):
    with pytest.raises(PlanError, match="--allow-cpu"):
        train_many([spec()], group="paper", workers=1)
    assert not (offline / "runs" / "paper").exists()
    train_many([spec()], group="paper", workers=1, allow_cpu=True)
    assert "warning: the paper profile on a CPU" in capsys.readouterr().out


def test_a_failing_run_stops_the_grid_unless_keep_going(offline):
    bad, good = spec(model_kw={"width": 4, "bogus": 1}), spec()
    with pytest.raises(TypeError, match="bogus"):
        train_many([bad, good], group="g", names=["bad", "good"], workers=1)
    assert runs.find(good, "g") is None  # stopped at the first failure
    with pytest.raises(GridError, match=r"1 of 2 run\(s\) failed in runs/g:\n- bad: TypeError"):
        train_many([bad, good], group="g", names=["bad", "good"], workers=1, keep_going=True)
    assert runs.find(good, "g")["status"] == "finished"  # the other run went on


def test_overrides_apply_to_every_spec(offline):
    (rec,) = train_many([spec(train={**TRAIN, "epochs": 3})], group="g", overrides="epochs=1;max_steps=1")
    assert rec.spec.train["epochs"] == 1 and len(rec.history) == 1


def test_a_thread_pool_executor_trains_a_run_once_when_two_tasks_ask_for_it(offline):
    s = spec()
    with ThreadPoolExecutor(2) as pool:
        a, b = train_many([s, s], group="g", names=["x", "y"], executor=pool)
    assert a["started"] == b["started"] and a["wall_time"] == b["wall_time"]  # one trained, the other reused it


def test_submitit_local_executor_runs_the_same_code_path(offline):
    pytest.importorskip("submitit")
    s, t = spec(), spec(train={**TRAIN, "seed": 1})
    ex = make_executor("submitit-local", offline / "jobs", timeout_min=10)
    recs = train_many([s, t, s], group="g", names=["s", "t", "s-again"], executor=ex)
    assert [r.run_id for r in recs] == [s.run_id, t.run_id, s.run_id]
    assert all(r["status"] == "finished" for r in recs)
    assert recs[0]["started"] == recs[2]["started"]  # the same run_id trained once
    assert runs.check_run(runs.run_dir("g", s.run_id)) == []  # a consistent record, no orphans
    assert list((offline / "jobs").glob("*_result.pkl"))  # the jobs went through submitit


def test_make_executor_names():
    assert make_executor("local") is None
    with pytest.raises(ValueError, match="unknown executor 'pbs'"):
        make_executor("pbs")
