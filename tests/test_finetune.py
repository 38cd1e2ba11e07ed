"""Fine-tuning: a run started from a finished smoke run (new head for new classes, parent recorded,
layer-wise learning rates), and run ids of specs without ``init`` unchanged."""

import pytest
import torch

from fgic import runs
from fgic.finetune import finetune_spec, head_prefix, initialize, parent_record
from fgic.losses import create_loss
from fgic.models import create_model
from fgic.runs import RunSpec

DATA = {"num_classes": 3, "images_per_class": 6, "test_per_class": 4, "image_size": 32}
TRAIN = {"epochs": 1, "batch_size": 6, "lr": 0.05, "accelerator": "cpu"}


def spec(**kw):
    base = dict(model="resnet18", model_kw={"width": 8}, data_kw=DATA, transform_kw={"image_size": 32}, train=TRAIN)
    return RunSpec(**{**base, **kw})


def test_run_ids_without_init_are_unchanged():
    """An empty ``init`` is not hashed: the id is that of the spec without the field (plus the data's
    fingerprint, part of every id since the data-identity change), computed here by hand."""
    import hashlib
    import json

    s = RunSpec(model="resnet18", data_kw=DATA, transform_kw={"image_size": 32}, train=TRAIN)
    d = {k: v for k, v in s.to_dict().items() if k != "init"}
    d["data"] = s.data_identity()["hash"]
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
    assert s.run_id == hashlib.sha1(blob.encode()).hexdigest()[:12]
    assert RunSpec(**{**s.to_dict(), "init": "run:abc"}).run_id != s.run_id


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("FGIC_RUNS", str(tmp_path_factory.mktemp("runs")))
    yield runs.train(spec(loss="cosface"), group="ft", progress=False)
    mp.undo()


def test_finetune_from_a_finished_run_on_new_classes(parent):
    child_spec = finetune_spec(parent, lr=0.01, data_kw={**DATA, "num_classes": 4}, loss="ce")
    assert child_spec.init == f"run:{parent.run_id}"
    assert child_spec.train["param_groups"] == {"": 0.01, "fc.": 0.1} and child_spec.train["lr"] == 0.1
    model, criterion, *_ = runs.build(child_spec)
    p_state = torch.load(parent.dir / "final.pt", weights_only=True)["model"]
    torch.testing.assert_close(model.state_dict()["features.conv1.weight"], p_state["features.conv1.weight"])
    assert model.fc.weight.shape == (4, model.num_features)  # a new head for 4 classes
    child = runs.train(child_spec, group="ft", progress=False)
    assert child["status"] == "finished" and child["num_classes"] == 4
    assert child["params"]["init"] == f"run:{parent.run_id}"
    assert parent_record(child).run_id == parent.run_id
    assert child.predictor().accuracy(runs.build_data(child.spec)[2]) == pytest.approx(child.metrics["test_top1"])


def test_same_classes_keep_the_trained_head_and_loss(parent):
    model, criterion, *_ = runs.build(spec(loss="cosface", init=f"run:{parent.dir}"))
    state = torch.load(parent.dir / "final.pt", weights_only=True)
    torch.testing.assert_close(criterion.weight, state["criterion"]["weight"])
    torch.testing.assert_close(model.fc.weight, state["model"]["fc.weight"])


def test_mismatched_architecture_and_bad_init_raise(parent, tmp_path):
    with pytest.raises(ValueError, match=r"shape mismatch \[.*features.bn1.weight"):
        runs.build(spec(model_kw={"width": 16}, init=f"run:{parent.run_id}"))
    with pytest.raises(ValueError, match="use 'run:"):
        runs.build(spec(init="nonsense"))
    with pytest.raises(FileNotFoundError, match="no run 'missing'"):
        runs.build(spec(init="run:missing"))


def test_init_from_a_weights_file_gets_a_new_head(tmp_path):
    src = create_model("resnet18", 5, width=8)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    model, crit = create_model("resnet18", 3, width=8), create_loss("ce", 3)
    info = initialize(model, crit, f"file:{tmp_path / 'w.pt'}")
    assert info["new_head"] and head_prefix(model) == "fc."
    torch.testing.assert_close(model.features.conv1.weight, src.features.conv1.weight)
    assert head_prefix(create_model("gholm_resnet18", 3, width=8)) == "net.fc."
