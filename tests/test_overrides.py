"""Overrides: ``--set KEY=VALUE`` / ``$FGIC_SET`` / ``settings(overrides=...)`` / ``fgic.runs.with_overrides``."""

import pytest

from fgic import profiles
from fgic.runs import RunSpec, RunSpecError, with_overrides


def test_parse_overrides_reads_yaml_values_and_several_separators():
    got = profiles.parse_overrides("epochs=1;max_steps=20, dataset=cub\nmodel_kw.layers=[1, 1]")
    assert got == {"epochs": 1, "max_steps": 20, "dataset": "cub", "model_kw.layers": [1, 1]}
    assert profiles.parse_overrides(["pretrained=no", "train.lr=0.01"]) == {"pretrained": False, "train.lr": 0.01}
    with pytest.raises(ValueError, match="'epochs' is not KEY=VALUE"):
        profiles.parse_overrides(["epochs"])


def test_settings_apply_overrides_to_every_training_config(monkeypatch):
    S = profiles.settings("04_gholm_net", "paper", overrides=["epochs=1", "max_steps=20", "seeds=[0]"])
    assert S["train"]["epochs"] == S["bench_train"]["epochs"] == 1
    assert S["train"]["max_steps"] == S["bench_train"]["max_steps"] == 20
    assert S["train"]["lr"] == 0.001 and S["seeds"] == [0]  # the rest of the paper profile is kept
    monkeypatch.setenv("FGIC_SET", "train.lr=0.5;limit_train=64")
    S = profiles.settings("01_acanet", "paper")  # what a notebook's kernel sees under run-notebooks --set
    assert S["train"]["lr"] == 0.5 and S["train"]["limit_train"] == 64 and S["train"]["epochs"] == 600


def test_dataset_override_selects_own_data(monkeypatch, tmp_path):
    S = profiles.settings("00_benchmark_tour", "smoke", overrides=f"dataset=cub;data_root={tmp_path}")
    assert profiles.data_source(S)[:2] == ("cub", {"root": str(tmp_path)})


def test_unknown_override_names_the_key():
    with pytest.raises(ValueError, match="unknown override 'epoch'"):
        profiles.settings("01_acanet", "smoke", overrides=["epoch=1"])


def test_run_spec_overrides():
    s = RunSpec(model="resnet18", train={"epochs": 60}, transform_kw={"image_size": 224}, pretrained=True)
    t = with_overrides(s, "epochs=1;max_steps=2;image_size=64;dataset=cub;data_root=/d;pretrained=no;model_kw.width=8")
    assert t.train == {"epochs": 1, "max_steps": 2} and t.transform_kw == {"image_size": 64}
    assert (t.dataset, t.data_kw, t.pretrained, t.model_kw) == ("cub", {"root": "/d"}, False, {"width": 8})
    assert t.run_id != s.run_id and s.train == {"epochs": 60}  # a new run; the original is untouched
    with pytest.raises(RunSpecError, match="unknown override 'colour'"):
        with_overrides(s, "colour=red")
