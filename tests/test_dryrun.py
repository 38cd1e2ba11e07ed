"""The dry run of the paper grids (``python -m fgic dry-run``) on the real CUB subset ``../shared/data/cub100``."""

import io
from pathlib import Path

import pytest

from fgic import dryrun
from fgic.__main__ import main

CUB100 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cub100"
needs_cub100 = pytest.mark.skipif(
    not (CUB100 / "CUB_200_2011" / "images.txt").is_file(),
    reason=f"the real CUB subset is absent ({CUB100}/CUB_200_2011/images.txt): the dry run needs real images",
)


def test_dry_spec_is_cheap_and_says_what_it_changed(tmp_path):
    spec = dryrun.grid("05_convnextv2_scra")["cub_aircraft:aug_l2sp_drop_scra:s0"]
    cheap, changes = dryrun.dry_spec(spec, "cub", str(tmp_path / "cub"))
    assert (cheap.dataset, cheap.data_kw["root"], cheap.pretrained) == ("cub", str(tmp_path / "cub"), False)
    assert cheap.model == "convnextv2_large_scra" and cheap.model_kw["dims"] == [8, 16, 32, 64]
    assert cheap.transform_kw == {"image_size": 64} and cheap.regularizer == spec.regularizer
    assert cheap.train["max_steps"] == 1 and cheap.train["limit_train"] == 4 and cheap.train["epochs"] == 2
    assert changes == [
        "no pretrained weights",
        "cub for cub_aircraft (absent)",
        'shrunk {"dims":[8,16,32,64],"depths":[1,1,1,1]}',
    ]
    gholm = dryrun.grid("04_gholm_net")["cub:+Drop:s0"]  # the crop source view stays twice the network input
    cheap, _ = dryrun.dry_spec(gholm, "cub", str(tmp_path))
    assert (cheap.transform_kw["image_size"], cheap.model_kw["input_size"]) == (128, 64)


def test_the_cross_study_paper_grid_is_shrunk_and_run_once_per_module(tmp_path):
    from fgic.models.study import list_study_modules

    spec = dryrun.grid("06_cross_paper_study")["cub:csca:s0"]
    cheap, changes = dryrun.dry_spec(spec, "cub", str(tmp_path))
    assert (cheap.model, cheap.model_kw) == ("study_resnet50", {"module": "csca", "layers": [1, 1, 1, 1], "width": 8})
    assert cheap.transform_kw == {"image_size": 64} and cheap.pretrained is False
    assert changes == ["no pretrained weights", 'shrunk {"layers":[1,1,1,1],"width":8}']
    grid = dryrun.grid("06_cross_paper_study").values()
    nets = {dryrun._keys(dryrun.dry_spec(s, "cub", str(tmp_path))[0]) for s in grid}
    assert len(nets) == len(list_study_modules()) + 2  # every module once, the MC-loss row and GHOLM (ResNet-50)


def test_every_notebook_has_a_paper_grid():
    sizes = {nb: len(dryrun.grid(nb)) for nb in dryrun.NOTEBOOKS}
    assert sizes["00_benchmark_tour"] == 1 and all(n > 1 for nb, n in sizes.items() if nb != "00_benchmark_tour")


@needs_cub100
def test_dry_run_passes_for_every_notebooks_paper_grid_on_cub100(capsys):
    rc = main(["dry-run", "--data", "cub", "--data-root", str(CUB100)])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = [line.split() for line in out.split("\n\n")[0].splitlines()[1:]]  # the table, without the summary
    assert {r[0] for r in rows} == {"00", "01", "02", "03", "04", "05", "06"}
    assert "FAIL" not in out and "specs passed all checks (built, data, step, resume, eval)" in out
    for model in (
        "vgg16",
        "densenet121",
        "resnet50_csca_units",
        "vgg16_bn_ma_top",
        "gholm_convnext_small",
        "convnextv2_large_scra",
        "study_resnet50",
    ):
        assert f" {model} " in out, model  # every network family of the paper grids ran


@needs_cub100
def test_dry_run_of_the_cross_study_runs_every_module_on_cub100():
    from fgic.models.study import list_study_modules

    rows = dryrun.dry_run(["06"], data_root=str(CUB100), out=io.StringIO())
    assert all(r.ok for r in rows), [r.error for r in rows if not r.ok]
    assert {r.name.split(":")[1] for r in rows} == {*list_study_modules(), "none+MC", "none+GHOLM"}
    assert {r.model for r in rows} == {"study_resnet50", "gholm_resnet50"} and {r.dataset for r in rows} == {"cub"}


@needs_cub100
def test_a_failing_spec_is_reported_not_raised(monkeypatch):
    monkeypatch.setitem(dryrun.SHRINK, "resnet18", {"width": 8, "bogus": 1})
    rows = dryrun.dry_run(["00"], data_root=str(CUB100), out=io.StringIO())
    (row,) = rows
    assert not row.ok and row.checks["data"] and row.checks["built"] is False and "bogus" in row.error
