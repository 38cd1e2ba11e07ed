"""``python -m fgic``: the notebook runner keeps going past a failure and exits non-zero; bench and list."""

import json

import nbformat
import pytest

from fgic.__main__ import main


def make_notebook(path, cells, tagged_parameters=True):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("PROFILE = None  # injected\nRETRAIN = False  # injected")
    if tagged_parameters:
        params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "fgic"\n')
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    make_notebook(
        nbdir / "00_good.ipynb",
        [
            "import os\nopen('seen.json', 'w').write(__import__('json').dumps("
            "{'profile': PROFILE, 'env': os.environ['FGIC_PROFILE']}))"
        ],
    )
    make_notebook(nbdir / "01_bad.ipynb", ["raise RuntimeError('boom in cell')"])
    make_notebook(nbdir / "02_after.ipynb", ["x = 1"])
    (nbdir / "scratch.ipynb").write_text("not a numbered notebook")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_runner_keeps_going_and_fails_at_the_end(project, capsys):
    code = main(["run-notebooks", "--profile", "smoke"])
    out = capsys.readouterr().out
    assert code == 1
    assert "2 passed, 1 failed" in out and "FAILED 01_bad" in out and "boom in cell" in out
    seen = json.loads((project / "notebooks" / "seen.json").read_text())  # ran with cwd = notebooks/
    assert seen == {"profile": "smoke", "env": "smoke"}
    assert (project / "notebooks" / "_out" / "02_after.smoke.ipynb").is_file()  # ran after the failure


def test_runner_selects_by_prefix_and_rejects_unknown_names(project, capsys):
    assert main(["run-notebooks", "--profile", "smoke", "00", "02_after"]) == 0
    assert "2 passed, 0 failed" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="no notebook matches"):
        main(["run-notebooks", "07_nothing"])


def test_bench_rejects_unknown_names():
    with pytest.raises(KeyError, match="unknown benchmark"):
        main(["bench", "no_such_bench"])


def test_list_names_registered_things(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "ce" in out and "synthetic" in out and "engine" in out


def test_run_notebooks_set_reaches_the_kernel_as_fgic_set(project):
    from fgic.notebooks import run_notebooks

    cell = "import os\nopen('set.txt', 'w').write(os.environ['FGIC_SET'])"
    make_notebook(project / "notebooks" / "03_env.ipynb", [cell])
    res = run_notebooks("smoke", ["03_env"], overrides=["epochs=1", "max_steps=20"])
    assert res[0]["ok"], res
    assert (project / "notebooks" / "set.txt").read_text() == "epochs=1;max_steps=20"
    assert main(["run-notebooks", "03_env", "--set", "epochs"]) == 2  # malformed: refused before any notebook


def test_run_notebooks_flags_reach_train_many_through_the_environment(project):
    keys = ["FGIC_SET", "FGIC_ALLOW_CPU", "FGIC_KEEP_GOING", "FGIC_EXECUTOR", "FGIC_SLURM_PARTITION"]
    cell = f"import os, json\njson.dump({{k: os.environ.get(k) for k in {keys}}}, open('env.json', 'w'))"
    make_notebook(project / "notebooks" / "03_env.ipynb", [cell])
    argv = ["run-notebooks", "03_env", "--set", "epochs=1", "--allow-cpu", "--keep-going"]
    assert main(argv + ["--executor", "slurm", "--slurm-partition", "gpu"]) == 0
    got = json.loads((project / "notebooks" / "env.json").read_text())
    assert got == {
        "FGIC_SET": "epochs=1",
        "FGIC_ALLOW_CPU": "1",
        "FGIC_KEEP_GOING": "1",
        "FGIC_EXECUTOR": "slurm",
        "FGIC_SLURM_PARTITION": "gpu",
    }


def test_runs_lists_records_and_which_match_the_data_here(tmp_path, monkeypatch, capsys):
    from fgic.runs import RunSpec

    monkeypatch.setenv("FGIC_RUNS", str(tmp_path))
    good = RunSpec(model="resnet18", data_kw={"num_classes": 3, "image_size": 32})
    for run_id, spec in ((good.run_id, good), ("0123456789ab", good)):  # the second: made from other data
        d = tmp_path / "g" / run_id
        d.mkdir(parents=True)
        d.joinpath("record.json").write_text(json.dumps({"run_id": run_id, "params": spec.to_dict(), "name": run_id,
                                                         "status": "finished", "metrics": {}}))
    assert main(["runs", "--group", "g"]) == 0
    out = capsys.readouterr().out
    assert good.run_id in out and "0123456789ab" in out
    assert main(["runs", "--group", "g", "--mismatched"]) == 0
    out = capsys.readouterr().out
    assert "0123456789ab" in out and good.run_id not in out


def test_publish_copies_an_executed_notebook_without_run_time_metadata(tmp_path, monkeypatch):
    from fgic import notebooks

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1", metadata={"papermill": {"duration": 1}})])
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.metadata["papermill"] = {"input_path": "/somewhere"}
    src = tmp_path / "x.ipynb"
    nbformat.write(nb, src)
    monkeypatch.setattr(notebooks, "results_dir", lambda: tmp_path / "results")
    (out,) = notebooks.publish(src, "00_x")
    pub = nbformat.read(out, as_version=4)
    assert out == tmp_path / "results" / "00_x.ipynb" and "papermill" not in pub.metadata
    assert pub.cells[0].outputs[0]["data"]["text/plain"] == "2" and "papermill" not in pub.cells[0].metadata


def test_publish_stores_figures_as_small_palette_pngs(tmp_path, monkeypatch):
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from fgic import notebooks

    fig, ax = plt.subplots(figsize=(20, 4), dpi=100)  # 2000 px wide: over MAX_FIGURE_PX
    ax.imshow(np.outer(np.sin(np.linspace(0, 3, 40)), np.cos(np.linspace(0, 9, 200))), cmap="viridis")  # a heatmap
    ax.plot(np.linspace(0, 199, 500), 20 + 15 * np.sin(np.linspace(0, 30, 500)), "w-")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    b64 = base64.b64encode(buf.getvalue()).decode()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("plot()")])
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", {"image/png": b64, "text/plain": "<Figure>"})]
    src = tmp_path / "x.ipynb"
    nbformat.write(nb, src)
    monkeypatch.setattr(notebooks, "results_dir", lambda: tmp_path / "results")
    (out,) = notebooks.publish(src, "00_x")
    small = nbformat.read(out, as_version=4).cells[0].outputs[0]["data"]["image/png"]
    assert len(small) < len(b64) / 2
    im = Image.open(io.BytesIO(base64.b64decode(small)))
    assert im.mode == "P" and im.width == notebooks.MAX_FIGURE_PX and im.height == round(400 * 1400 / 2000)


def test_notebooks_run_two_at_a_time_with_pinned_kernel_threads(project, monkeypatch):
    import os

    from fgic.notebooks import notebook_jobs, run_notebooks

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cell = ("import os, json, time\nt0 = time.time()\ntime.sleep(3)\n"
            "json.dump([t0, time.time(), os.environ.get('OMP_NUM_THREADS')], open(f'{NAME}.json', 'w'))")
    for name in ("03_a", "04_b"):
        make_notebook(project / "notebooks" / f"{name}.ipynb", [f"NAME = {name!r}", cell])
    res = run_notebooks("smoke", ["03_a", "04_b"], pretrain_runs=False, jobs=2)
    assert [r["name"] for r in res] == ["03_a", "04_b"] and all(r["ok"] for r in res), res
    seen = [json.loads((project / "notebooks" / f"{n}.json").read_text()) for n in ("03_a", "04_b")]
    (a0, a1, ta), (b0, b1, tb) = seen
    assert a0 < b1 and b0 < a1  # the two kernels ran at the same time
    assert ta == tb == str(max(1, (os.cpu_count() or 1) // 2))
    assert "OMP_NUM_THREADS" not in os.environ  # restored afterwards
    assert notebook_jobs("auto", "paper") == 1 and notebook_jobs(3) == 3
    with pytest.raises(ValueError, match="at least 1"):
        notebook_jobs(0)
