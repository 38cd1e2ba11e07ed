"""Overrides: ``--set KEY=VALUE`` / ``$FGIC_SET`` / ``settings(overrides=...)`` / ``fgic.runs.with_overrides``."""

import pytest

from fgic import profiles
from fgic.runs import RunSpec, RunSpecError, with_overrides
from fgic.settings import SettingsError


def test_parse_overrides_reads_yaml_values_and_several_separators():
    got = profiles.parse_overrides("epochs=1;max_steps=20, dataset=cub\nmodel_kw.layers=[1, 1]")
    assert got == {"epochs": 1, "max_steps": 20, "dataset": "cub", "model_kw.layers": [1, 1]}
    assert profiles.parse_overrides(["pretrained=no", "train.lr=0.01"]) == {"pretrained": False, "train.lr": 0.01}
    with pytest.raises(ValueError, match="'epochs' is not KEY=VALUE"):
        profiles.parse_overrides(["epochs"])


def test_settings_apply_overrides_to_every_training_config(monkeypatch):
    S = profiles.settings("04_gholm_net", "paper", overrides=["epochs=1", "max_steps=20", "seeds=[0]"])
    assert S.train["epochs"] == S.bench_train["epochs"] == 1
    assert S.train["max_steps"] == S.bench_train["max_steps"] == 20
    assert S.train["lr"] == 0.001 and S.seeds == [0]  # the rest of the paper profile is kept
    monkeypatch.setenv("FGIC_SET", "train.lr=0.5;limit_train=64")
    S = profiles.settings("01_acanet", "paper")  # what a notebook's kernel sees under run-notebooks --set
    assert S.train["lr"] == 0.5 and S.train["limit_train"] == 64 and S.train["epochs"] == 600
    S = profiles.settings("01_acanet", "smoke", overrides="image_size=48;table2.losses=[ce]")  # keys the YAML omits
    assert S.image_size == 48 and S.table2.losses == ["ce"]


def test_dataset_override_selects_own_data(monkeypatch, tmp_path):
    S = profiles.settings("00_benchmark_tour", "smoke", overrides=f"dataset=cub;data_root={tmp_path}")
    assert profiles.data_source(S)[:2] == ("cub", {"root": str(tmp_path)})


def test_unknown_override_names_the_key():
    with pytest.raises(ValueError, match="unknown override 'epoch': did you mean 'epochs'"):
        profiles.settings("01_acanet", "smoke", overrides=["epoch=1"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("epochs=three", "override epochs='three' (01_acanet [smoke]): train.epochs = 'three' is not an int"),
        ("train.lr=1e-4", "train.lr = '1e-4' is not a float (YAML reads 1e-4 as a string: write 1.0e-4)"),
        ("table4.seeds=[0, x]", "(01_acanet [smoke]): table4.seeds[1] = 'x' is not an int"),
        ("table2.loss=[ce]", "table2.loss is not a key of Table2 settings: did you mean 'losses'?"),
        ("benchmark.image_size=64px", "benchmark.image_size = '64px' is not an int"),
        ("train.epoch=3", "train.epoch is not a TrainConfig field: did you mean 'epochs'?"),
        ("epochs=0", "train.epochs is not a valid training config: TrainConfig.epochs=0 must be >= 1"),
        ("fuse_images=yes", "fuse_images = True is not an int"),
        ("foo.bar=1", "override foo.bar=1 (01_acanet [smoke]): foo is not a key of ACANet settings"),
    ],
)
def test_bad_override_type_names_override_key_and_type(override, message):
    with pytest.raises(SettingsError) as e:
        profiles.settings("01_acanet", "smoke", overrides=override)
    assert message in str(e.value)


def test_run_spec_overrides():
    s = RunSpec(model="resnet18", train={"epochs": 60}, transform_kw={"image_size": 224}, pretrained=True)
    t = with_overrides(s, "epochs=1;max_steps=2;image_size=64;dataset=cub;data_root=/d;pretrained=no;model_kw.width=8")
    assert t.train == {"epochs": 1, "max_steps": 2} and t.transform_kw == {"image_size": 64}
    assert (t.dataset, t.data_kw, t.pretrained, t.model_kw) == ("cub", {"root": "/d"}, False, {"width": 8})
    assert t.run_id != s.run_id and s.train == {"epochs": 60}  # a new run; the original is untouched
    with pytest.raises(RunSpecError, match="unknown override 'colour'"):
        with_overrides(s, "colour=red")
