"""Typed settings (``fgic.settings``): every profile of every notebook loads, a bad file says where and what,
run ids of the committed default runs are unchanged, and ``fgic.session`` sets a notebook up."""

import importlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

import fgic
from fgic import paths, profiles
from fgic.engine import TrainConfig
from fgic.experiments import benchmark_tour
from fgic.settings import NOTEBOOKS, Benchmark, SettingsError

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = {
    "01_acanet": "acanet",
    "02_multi_attention": "multi_attention",
    "03_mixed_attention": "mixed_attention",
    "04_gholm_net": "gholm",
    "05_convnextv2_scra": "scra",
    "06_cross_paper_study": "cross_study",
}


def test_every_notebook_has_settings_and_a_params_file():
    assert sorted(NOTEBOOKS) == sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(NOTEBOOKS) == sorted(p.stem for p in (ROOT / "params").glob("[0-9][0-9]_*.yaml"))


@pytest.mark.parametrize("profile", profiles.PROFILES)
@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS))
def test_every_profile_of_every_notebook_loads(notebook, profile):
    S = profiles.settings(notebook, profile, overrides={})
    assert type(S) is NOTEBOOKS[notebook] and (S.notebook, S.profile) == (notebook, profile)
    assert isinstance(S.benchmark, Benchmark) and S.data is None
    assert S.train_configs(), "every notebook trains something"
    for cfg in S.train_configs().values():
        TrainConfig.from_dict(cfg)
    table = S.table()
    assert {"profile", "data", "image size", "seeds"} <= set(table) and any(k.endswith("train") for k in table)
    assert table._repr_markdown_().count("\n") == len(table) + 2 and table.to_frame().shape == (len(table), 1)


@pytest.fixture
def params(tmp_path, monkeypatch):
    """A copy of params/ that ``profiles.settings`` reads; edit it with ``change(file, profile, fn)``."""
    d = tmp_path / "params"
    shutil.copytree(ROOT / "params", d)
    monkeypatch.setattr(profiles, "params_dir", lambda: d)

    def change(name, profile, fn):
        data = yaml.safe_load((d / name).read_text())
        fn(data[profile])
        (d / name).write_text(yaml.safe_dump(data))

    return change


def _set(path, value):
    def fn(section):
        *head, last = path.split(".")
        for k in head:
            section = section[k]
        section[last] = value

    return fn


@pytest.mark.parametrize(
    "name, edit, message",
    [
        ("01_acanet.yaml", _set("train.epochs", "three"),
         "params/01_acanet.yaml [default]: train.epochs = 'three' is not an int"),
        ("01_acanet.yaml", _set("trian", {"epochs": 3}),
         "params/01_acanet.yaml [default]: trian is not a key of ACANet settings: did you mean 'train'?"),
        ("01_acanet.yaml", _set("table2.loss", ["ce"]),
         "params/01_acanet.yaml [default]: table2.loss is not a key of Table2 settings: did you mean 'losses'?"),
        ("01_acanet.yaml", lambda s: s.pop("infer"),
         "params/01_acanet.yaml [default]: infer is missing (a mapping with keys batch, repeats, warmup, rounds)"),
        ("01_acanet.yaml", _set("datasets", "synthetic"),
         "params/01_acanet.yaml [default]: datasets = 'synthetic' is not a list of str"),
        ("01_acanet.yaml", _set("train.epochz", 3),
         "params/01_acanet.yaml [default]: train.epochz is not a TrainConfig field: did you mean 'epochs'?"),
        ("01_acanet.yaml", _set("train.lr", "1e-3"),
         "params/01_acanet.yaml [default]: train.lr = '1e-3' is not a float (YAML reads 1e-4 as a string"),
        ("profiles.yaml", _set("benchmark.image_size", "64px"),
         "params/profiles.yaml [default]: benchmark.image_size = '64px' is not an int"),
        ("04_gholm_net.yaml", _set("mu_eval", [1.6, "x"]),
         "params/04_gholm_net.yaml [default]: mu_eval[1] = 'x' is not a float"),
        ("03_mixed_attention.yaml", _set("small_sample.images", 3),
         "params/03_mixed_attention.yaml [default]: small_sample.images is not a benchmark knob"),
        ("02_multi_attention.yaml", _set("seeds", [0, "1"]),
         "params/02_multi_attention.yaml [default]: seeds[1] = '1' is not an int (drop the quotes)"),
    ],
)
def test_a_bad_settings_file_names_file_profile_key_and_type(params, name, edit, message):
    params(name, "default", edit)
    notebook = "01_acanet" if name == "profiles.yaml" else name.removesuffix(".yaml")
    with pytest.raises(SettingsError) as e:
        profiles.settings(notebook, "default", overrides={})
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


def _default_run_ids() -> dict[str, str]:
    """run_id -> name of every run the default profile's grids (and notebook 00's one run) build."""
    ids = {}
    for notebook, module in EXPERIMENTS.items():
        S = profiles.settings(notebook, "default", overrides={})
        for name, spec in importlib.import_module(f"fgic.experiments.{module}").grid(S).items():
            ids[spec.run_id] = f"{notebook}:{name}"
    S = profiles.settings("00_benchmark_tour", "default", overrides={})
    for name, spec in benchmark_tour.grid(S).items():
        ids[spec.run_id] = f"00_benchmark_tour:{name}"
    return ids


def _data_absent_here(record: Path) -> bool:
    """A record of real data that is not readable here (notebook 07's cub100): its run id cannot be recomputed
    without the data, so its notebook's tests check it by its spec (tests/test_experiments_cub100_study.py)."""
    from fgic.runs import RunSpec as Spec  # local: the module's imports change with the notebooks' grids

    return Spec(**json.loads(record.read_text())["params"]).data_identity()["hash"] == "missing"


def test_committed_default_runs_keep_their_run_ids():
    records = sorted((ROOT / "runs" / "default").glob("*/record.json"))
    if not records:
        pytest.skip("no committed default runs in runs/default/")
    ids = _default_run_ids()
    stale = [(r.parent.name, json.loads(r.read_text()).get("name")) for r in records
             if json.loads(r.read_text())["run_id"] not in ids and not _data_absent_here(r)]
    assert not stale, f"committed default runs no grid builds any more (run_id, name): {stale}"


def test_session_sets_a_notebook_up(monkeypatch, capsys):
    monkeypatch.setenv("FGIC_SET", "epochs=3;max_steps=5")
    try:
        S, device = fgic.session("00_benchmark_tour", "smoke", "epochs=2", dataset="", data_root="")
        session = fgic.session("01_acanet", None, "", data_file="")
        assert paths.figures_dir() == session.figures
    finally:
        paths.set_active_profile(None)
    assert S.train["epochs"] == 2 and S.train["max_steps"] == 5  # OVERRIDES win over $FGIC_SET
    assert S.profile == "smoke" and S.data is None and device in ("cpu", "cuda")
    assert session.profile == "smoke" and session.settings.notebook == "01_acanet"  # $FGIC_PROFILE (conftest)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"fgic {fgic.__version__} | torch ")
    assert "| profile smoke | threads " in lines[0] and lines[0].endswith("overrides epochs=2, max_steps=5")


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS))
def test_profile_train_defaults_pin_one_thread_per_run(notebook):
    """profiles.yaml's train_defaults (threads: 1) reach every training config of the default and smoke
    profiles, a notebook's own keys and overrides win, and the paper profile (GPU) pins nothing."""
    for profile in ("smoke", "default"):
        S = profiles.settings(notebook, profile, overrides={})
        assert S.train_configs() and all(t["threads"] == 1 for t in S.train_configs().values())
    S = profiles.settings(notebook, "default", overrides="threads=2")
    assert all(t["threads"] == 2 for t in S.train_configs().values())
    S = profiles.settings(notebook, "paper", overrides={})
    assert all("threads" not in t for t in S.train_configs().values())
