"""Every benchmark runs at a toy size and prints its ratios by name (figures at this size mean nothing)."""

from pathlib import Path

import pytest

from fgic.bench import list_benchmarks, run_benchmark

RATIOS = {
    "fcsa": ["fcsa_infer_ratio", "fcsa_train_ratio"],
    "engine": ["engine_over_bare"],
    "gholm": ["gholm_step_ratio"],
    "loader": ["loader_ratio_w0", "cores_for_3000_img_s"],
    "timm": ["fgic_over_timm_w0"],
}

CUB100 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cub100"
NEEDS_CUB = {"loader", "timm"}
KEYS = {"gholm_step_ratio": "ratio"}  # printed name -> key of the returned dict, where they differ


@pytest.mark.parametrize("name", sorted(RATIOS))
def test_bench_runs_tiny_and_prints_its_ratios(name, capsys):
    if name in NEEDS_CUB and not CUB100.is_dir():
        pytest.skip("cub100 subset not present")
    out = run_benchmark(name, "cpu", tiny=True)
    text = capsys.readouterr().out
    for ratio in RATIOS[name]:
        assert f"{ratio} = " in text, text
        assert out[KEYS.get(ratio, ratio)] > 0


def test_every_benchmark_is_listed():
    assert set(RATIOS) <= set(list_benchmarks())


@pytest.mark.skipif(not CUB100.is_dir(), reason="cub100 subset not present")
def test_gpu_bench_table_at_tiny_size(capsys):
    from fgic.__main__ import main

    assert main(["bench", "gpu", "--tiny", "--peak-tflops", "1"]) == 0
    text = capsys.readouterr().out
    assert "MFU against a 1 TFLOP/s peak" in text
    rows = [line.split() for line in text.splitlines() if line.startswith(("resnet18 ", "convnext_atto "))]
    assert [(r[0], r[4]) for r in rows] == [(m, lo) for m in ("resnet18", "convnext_atto") for lo in ("fgic", "plain")]
    assert all(float(r[5]) > 0 and r[6].endswith("%") for r in rows)  # img/s and MFU
    assert "loader_ratio_w0 = " in text


def test_cross_bench_times_every_row_of_notebook_06(capsys):
    from fgic.experiments import cross_study as cs
    from fgic.profiles import settings

    out = run_benchmark("cross", "cpu", tiny=True)
    text = capsys.readouterr().out
    rows = cs.rows(settings(cs.NOTEBOOK, "smoke"))
    assert list(out["rows"]) == rows
    printed = {line.split()[0] for line in text.splitlines() if line.split() and line.split()[0] in rows}
    assert printed == set(rows), text
    r = out["rows"]
    assert r["none"]["train_over_none"] == 1.0
    assert all(v["train img/s"] > 0 and v["infer img/s"] > 0 and v["GPU hours"] > 0 for v in r.values())
    # ACCB is timed as deployed: its three branches fused, so it costs what the plain network costs
    assert r["accb"]["fused blocks"] > 0 and r["accb"]["GMACs"] == pytest.approx(r["none"]["GMACs"])
    assert out["grid_gpu_hours"] == pytest.approx(sum(v["GPU hours"] for v in r.values()))
