"""Own data in every notebook's grid: with ``dataset="folder"`` / ``"csv"`` the benchmark column's runs train on it."""

import pytest

from fgic import profiles
from fgic.experiments import acanet, base, mixed_attention, multi_attention, scra

MODULES = [acanet, multi_attention, mixed_attention, scra]  # 04: test_experiments_gholm (own data, no object scales)


def bench_specs(mod, S: dict) -> dict:
    """The runs of ``mod``'s grid in the benchmark column (in smoke / default: every run)."""
    return {k: s for k, s in mod.grid(S).items() if base.parse_run_name(k)[0] == base.BENCHMARK}


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_folder_override_reaches_every_run(mod, profile, tmp_path):
    S = profiles.settings(mod.NOTEBOOK, profile, dataset="folder", data_root=str(tmp_path), image_size=40)
    runs = bench_specs(mod, S)
    assert runs and len(runs) == len(mod.grid(S))  # smoke / default: every run is in the benchmark column
    for name, spec in runs.items():
        assert spec.dataset == "folder", name
        assert spec.data_kw["root"] == str(tmp_path), name
        assert "num_classes" not in spec.data_kw  # none of the benchmark's knobs leak into the folder loader
        assert spec.transform_kw["image_size"] == 40, name
    plain = profiles.settings(mod.NOTEBOOK, profile)  # no override: the embedded benchmark, run ids unchanged
    assert {s.dataset for s in mod.grid(plain).values()} == {"synthetic"}
    assert not {s.run_id for s in runs.values()} & {s.run_id for s in mod.grid(plain).values()}


def test_csv_override_names_its_table(tmp_path):
    table = tmp_path / "labels.csv"
    S = profiles.settings(scra.NOTEBOOK, "smoke", dataset="csv", data_root=str(tmp_path), data_file=str(table))
    for spec in scra.grid(S).values():
        assert spec.dataset == "csv" and spec.data_kw == {"root": str(tmp_path), "file": str(table)}

