"""Export: the fused torch.export / TorchScript file gives the same logits as the PyTorch predictor (within 1e-4)."""

import pytest
import torch

from fgic import runs
from fgic.export import export, fused_predictor, load_exported
from fgic.runs import RunSpec

DATA = {"num_classes": 3, "images_per_class": 6, "test_per_class": 4, "image_size": 32}


@pytest.fixture(scope="module")
def acanet_cosface(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("FGIC_RUNS", str(tmp_path_factory.mktemp("runs")))
    spec = RunSpec(
        model="acanet18",
        loss="cosface",
        model_kw={"width": 8, "kernel_att": 3, "fcsa_stages": [4]},
        data_kw=DATA,
        transform_kw={"image_size": 32},
        train={"epochs": 1, "batch_size": 6, "lr": 0.05, "accelerator": "cpu"},
    )
    yield runs.train(spec, group="export", progress=False)
    mp.undo()


def _accbs(rec):
    """ACCB blocks in the run's unfused model."""
    from fgic.nn.acb import ACCB

    return sum(isinstance(m, ACCB) for m in rec.load_model().modules())


@pytest.mark.parametrize("fmt", ["pt2", "torchscript"])
def test_exported_model_equals_the_pytorch_predictor(acanet_cosface, tmp_path, fmt):
    rec = acanet_cosface
    path = export(rec.run_id, tmp_path / f"m.{fmt}", fmt)
    module, meta = load_exported(path)
    assert meta["run_id"] == rec.run_id and meta["classes"] == rec["classes"] and meta["input_size"] == [32, 32]
    assert meta["fused_blocks"] == _accbs(rec) == 8  # every ACCB of ACANet-18 was fused
    x = torch.stack([runs.build_data(rec.spec)[2][i][0] for i in range(7)])  # (7, 3, 32, 32): not the traced batch
    with torch.no_grad():
        ref = rec.predictor()(x)  # unfused, with the CosFace head
        got = module(x)
    assert got.shape == (7, rec["num_classes"])
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)
    # the exported scores are the loss head's, not the untrained fc's
    with torch.no_grad():
        assert not torch.allclose(got, rec.load_model()(x), atol=1e-3)


def test_fused_predictor_really_fuses(acanet_cosface):
    pred = fused_predictor(acanet_cosface)
    assert pred.model.num_reparameterized == _accbs(acanet_cosface) == 8
    assert all(getattr(m, "deployed", True) for m in pred.model.modules() if hasattr(m, "reparameterize"))


def test_export_command_and_its_errors(acanet_cosface, tmp_path, capsys):
    from fgic.__main__ import main

    out = tmp_path / "cli.pt2"
    assert main(["export", "--run", str(acanet_cosface.dir), "--out", str(out)]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    assert main(["export", "--run", "nosuchrun"]) == 2
    assert "no run 'nosuchrun'" in capsys.readouterr().err


def test_gholm_with_its_crop_branch_is_refused():
    from fgic.models import create_model
    from fgic.predict import Predictor

    with pytest.raises(ValueError, match="GHOLM-Net's test-time crop"):
        fused_predictor(Predictor(create_model("gholm_resnet18", 3, width=8)))
