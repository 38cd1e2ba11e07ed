"""The one Predictor: accuracy through it equals the record's test top-1 for CE, CosFace, LGM and GHOLM runs;
margin-loss runs predict through the loss head; Grad-CAM reads the loss head; batch prediction and its errors."""

from pathlib import Path

import numpy as np
import pytest
import torch

from fgic import runs
from fgic.cam import grad_cam
from fgic.models.base import model_outputs
from fgic.predict import Predictor, predict
from fgic.runs import RunSpec

DATA = {"num_classes": 3, "images_per_class": 6, "test_per_class": 4, "image_size": 32}
TRAIN = {"epochs": 2, "batch_size": 6, "lr": 0.05, "accelerator": "cpu"}
CUB100 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cub100"


def spec(model="resnet18", loss="ce", **kw):
    return RunSpec(
        model=model,
        loss=loss,
        model_kw={"width": 8, **kw},
        data_kw=DATA,
        transform_kw={"image_size": 32},
        train=TRAIN,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("FGIC_RUNS", str(root))
    specs = {
        "ce": spec(),
        "cosface": spec(loss="cosface"),
        "lgm": spec(loss="lgm"),
        "gholm": spec(model="gholm_resnet18"),
    }
    recs = {k: runs.train(s, group="predict", progress=False) for k, s in specs.items()}
    yield recs
    mp.undo()


@pytest.mark.parametrize("kind", ["ce", "cosface", "lgm", "gholm"])
def test_predictor_accuracy_equals_the_recorded_test_top1(trained, kind):
    rec = trained[kind]
    pred = rec.predictor()
    assert not pred.training
    test = runs.build_data(rec.spec)[2]
    assert pred.accuracy(test, batch_size=12) == pytest.approx(rec.metrics["test_top1"], abs=1e-6)
    # stronger than the top-1: the same prediction per class, i.e. the recorded confusion matrix
    x = torch.stack([test[i][0] for i in range(len(test))])  # (N, 3, 32, 32)
    y = torch.tensor(test.targets)
    with torch.no_grad():
        p = pred(x).argmax(1)
    k = rec["num_classes"]
    confusion = torch.bincount(y * k + p, minlength=k * k).view(k, k).tolist()
    assert confusion == rec.metrics["confusion"], kind


@pytest.mark.parametrize("kind", ["cosface", "lgm"])
def test_margin_loss_runs_predict_through_the_loss_head(trained, kind):
    rec = trained[kind]
    pred = Predictor.from_record(rec.dir)  # from the folder, as the command line does
    x = runs.build_data(rec.spec)[2][0][0][None]  # (1, 3, 32, 32)
    with torch.no_grad():
        bare = rec.load_model()(x)  # the untrained fc
        ours = pred(x)
        head = pred.criterion.logits(model_outputs(pred.model, x))
    assert not torch.allclose(ours, bare, atol=1e-3)
    torch.testing.assert_close(ours, head)
    assert pred.embed(x).shape == (1, rec["feat_dim"])


def test_grad_cam_of_a_predictor_reads_the_loss_head(trained):
    rec = trained["cosface"]
    pred = rec.predictor()
    x = torch.stack([runs.build_data(rec.spec)[2][i][0] for i in range(4)])  # (4, 3, 32, 32)
    x = torch.nn.functional.interpolate(x, size=128, mode="bilinear")  # a 4 x 4 last map: non-trivial heatmaps
    classes = torch.tensor([0, 1, 2, 0])
    heat = pred.grad_cam(x, classes)
    assert heat.shape == (4, 128, 128) and 0 <= heat.min() and heat.max() <= 1 and heat.amax((1, 2)).gt(0).all()
    torch.testing.assert_close(heat, grad_cam(pred, x, classes))
    # the score Grad-CAM differentiates is the loss's logit, so the maps differ from the bare model's
    _, scores = grad_cam(pred, x, classes, return_logits=True)
    with torch.no_grad():
        torch.testing.assert_close(scores.detach(), pred(x))
    assert not torch.allclose(heat, grad_cam(pred.model, x, classes), atol=1e-3)
    # default classes: the predictor's own argmax
    with torch.no_grad():
        top = pred(x).argmax(1)
    torch.testing.assert_close(pred.grad_cam(x), grad_cam(pred, x, top))


def test_predictor_from_run_id_and_errors(trained, tmp_path):
    rec = trained["ce"]
    assert Predictor.from_record(rec.run_id).record.run_id == rec.run_id
    with pytest.raises(FileNotFoundError, match="no run 'nosuchrun'"):
        Predictor.from_record("nosuchrun")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "record.json").write_text((rec.dir / "record.json").read_text())
    with pytest.raises(FileNotFoundError, match="final.pt"):
        Predictor.from_record(broken)


def _check_top_k_rows(rec, df):
    """Each row: softmax of the run's logits on the image through its eval transform, the two best classes."""
    from fgic.data import load_rgb
    from fgic.data.transforms import build_transform

    tf = build_transform(rec.spec.transform, train=False, **rec.spec.transform_kw)
    pred = rec.predictor()
    for row in df.itertuples():
        with torch.no_grad():
            prob = pred(tf(load_rgb(row.path))[None])[0].softmax(0)  # (K,)
        best = prob.argsort(descending=True)[:2].tolist()
        assert [row.top1, row.top2] == [rec["classes"][c] for c in best], row.path
        assert [row.p1, row.p2] == pytest.approx(prob[best].tolist(), abs=1e-6), row.path


def test_predict_images_top_k_csv_and_cam(trained, tmp_path):
    from PIL import Image

    rec = trained["lgm"]
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)  # textured images: a wrong resize or crop changes the scores
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    import fgic

    df = fgic.predict(
        rec.run_id, [folder], k=2, cam_dir=tmp_path / "cam", csv_path=tmp_path / "out.csv", progress=False
    )
    assert list(df.columns) == ["path", "top1", "top2", "p1", "p2"] and len(df) == 3
    assert set(df.top1) <= set(rec["classes"]) and (df.p1 >= df.p2).all() and (df.p1 <= 1).all()
    assert sorted(df.path) == [str(folder / f"im{i}.png") for i in range(3)]
    # LGM's scores are large distances (probabilities 0 or 1); the CE run's probabilities are graded
    for r, table in ((rec, df), (trained["ce"], fgic.predict(trained["ce"].run_id, [folder], k=2, progress=False))):
        _check_top_k_rows(r, table)
    assert (tmp_path / "out.csv").read_text().startswith("path,top1,top2,p1,p2")
    cams = sorted((tmp_path / "cam").glob("*.png"))
    assert len(cams) == 3 and Image.open(cams[0]).size == (40, 30)
    (folder / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="notes.png is not a readable image"):
        predict(rec.run_id, [folder], progress=False)
    with pytest.raises(FileNotFoundError, match="no such image or folder"):
        predict(rec.run_id, [tmp_path / "missing.jpg"], progress=False)


@pytest.mark.skipif(not CUB100.is_dir(), reason=f"the CUB subset is not at {CUB100}")
def test_predict_three_cub100_images_from_the_command_line(trained, tmp_path, capsys):
    from fgic.__main__ import main

    imgs = sorted((CUB100 / "CUB_200_2011" / "images").rglob("*.jpg"))[:3]
    out = tmp_path / "pred.csv"
    rc = main(
        ["predict", "--run", trained["cosface"].run_id, "-k", "3", "--csv", str(out), "--cam", str(tmp_path / "c")]
        + [str(p) for p in imgs]
    )
    assert rc == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and lines[0] == "path,top1,top2,top3,p1,p2,p3"
    assert len(list((tmp_path / "c").glob("*.png"))) == 3
    assert "top1" in capsys.readouterr().out


def test_stage1_grad_cam_takes_a_predictor_and_its_loss_head():
    from fgic.experiments import scra as X
    from fgic.losses import create_loss
    from fgic.models import create_model

    torch.manual_seed(0)
    m = create_model("convnextv2_atto_scra", 3, dims=[8, 16, 32, 64], depths=[1, 1, 1, 1]).eval()
    pred = Predictor(m, create_loss("lgm", 3, feat_dim=m.num_features))
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 2])
    heat = X.stage1_grad_cam(pred, x, y)
    assert heat.shape == (2, 64, 64)
    assert not torch.allclose(heat, X.stage1_grad_cam(m, x, y), atol=1e-4)  # LGM's score, not the fc's
