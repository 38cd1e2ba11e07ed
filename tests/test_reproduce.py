"""python -m fgic reproduce: a grid retrained into a fresh folder, conclusions compared by key."""

import json
import types

from fgic import reproduce
from fgic.experiments import base
from fgic.experiments.base import Conclusion
from fgic.runs import RunSpec

KNOBS = {"num_classes": 3, "images_per_class": 6, "test_per_class": 4, "image_size": 32}


def fake_experiment():
    def grid(S):
        threads = getattr(S, "threads", None)  # the fake settings of the overrides test; real settings have none
        train = {"epochs": 1, "batch_size": 6, "lr": 0.05, "max_steps": 2, **({"threads": threads} if threads else {})}
        return {base.run_name("benchmark", row, s): RunSpec(model="resnet18", model_kw={"width": 8}, data_kw=KNOBS,
                                                            transform_kw={"image_size": 32},
                                                            train={**train, "seed": s, "lr": lr})
                for row, lr in (("A", 0.05), ("B", 0.01)) for s in (0, 1)}

    def conclusions(S, records):
        return [Conclusion(f"runs/{n}", n, "ran" if r else "absent") for n, r in sorted(records.items())]

    return types.SimpleNamespace(NOTEBOOK="00_benchmark_tour", grid=grid, conclusions=conclusions,
                                 tables=None, paper_numbers=None)


def test_compare_conclusions_by_key():
    a = [Conclusion("k1", "", "reproduced"), Conclusion("k2", "", "no significant difference")]
    b = [Conclusion("k2", "", "B better"), Conclusion("k3", "", "B worse")]
    rows = reproduce.compare_conclusions(a, b)
    assert [(r["key"], r["agree"]) for r in rows] == [("k1", False), ("k2", False), ("k3", False)]
    assert rows[0]["rerun"] == "absent" and rows[2]["committed"] == "absent"
    assert reproduce.compare_conclusions(a, a)[0]["agree"]
    a2 = [Conclusion("k2", "x vs y: +1.0 points, p = 0.041", "B better")]
    b2 = [Conclusion("k2", "x vs y: +0.5 points, p = 0.142", "no significant difference")]
    row = reproduce.compare_conclusions(a2, b2)[0]
    assert not row["agree"] and "0.041" in row["committed_text"] and "0.142" in row["rerun_text"]


def test_change_kind_tells_significance_only_changes_from_contradictions():
    C = lambda v, d=None: Conclusion("k", "", v, d, 0.04 if d else None, 5 if d else None)
    kind = reproduce.change_kind
    assert kind(C("B worse", -6.5), C("B worse", -2.0)) == "same"
    assert kind(C("B worse", -6.5), C("no significant difference", -5.6)) == "significance"
    assert kind(C("no significant difference", 5.9), C("reproduced", 5.0)) == "significance"
    assert kind(C("B better", 2.0), C("no significant difference", -0.3)) == "contradicts"  # the effect turned
    assert kind(C("B better", 2.0), C("B worse", -2.0)) == "contradicts"
    assert kind(C("reproduced"), C("contradicted")) == "contradicts"
    assert kind(C("reproduced"), C("no significant difference")) == "significance"  # no numbers: words only
    assert kind(C("at chance"), C("above chance")) == "differs"
    assert kind(C("B better", 1.0), None) == "differs"
    assert kind(C("not testable"), C("no significant difference", 1.0)) == "differs"


def test_summary_counts_kinds_and_the_changes_a_reseed_would_give():
    a = [Conclusion("k1", "", "B worse", -6.5, 0.041, 5), Conclusion("k2", "", "B better", 3.0, 0.0001, 5),
         Conclusion("k3", "", "at chance")]
    b = [Conclusion("k1", "", "no significant difference", -5.6, 0.14, 5),
         Conclusion("k2", "", "B worse", -1.0, 0.01, 5), Conclusion("k3", "", "at chance")]
    rows = reproduce.compare_conclusions(a, b)
    assert [r["kind"] for r in rows] == ["significance", "contradicts", "same"]
    text = reproduce.summary(rows)
    assert "1 of 3 verdicts agree; 1 changed in significance only (same sign); 1 contradict" in text
    assert "about 0.5 of the 2 tested verdicts" in text  # p = 0.041 at 5 seeds: 2 q (1 - q) ~ 0.49; p = 1e-4: ~0


def test_reproduce_trains_into_a_fresh_folder_and_reads_committed_records(tmp_path, monkeypatch, capsys):
    exp = fake_experiment()
    monkeypatch.setattr(reproduce, "experiment", lambda nb: exp)
    committed = tmp_path / "runs"
    monkeypatch.setenv("FGIC_RUNS", str(committed))
    grid = exp.grid(None)
    # one committed record (finished) for the first run only
    spec = next(iter(grid.values()))
    d = committed / "smoke" / spec.run_id
    d.mkdir(parents=True)
    (d / "record.json").write_text(json.dumps({"status": "finished", "run_id": spec.run_id, "metrics": {}}))
    rows = reproduce.reproduce("00", profile="smoke", folder=tmp_path / "fresh", workers=1)
    out = capsys.readouterr().out
    assert "3 of 4 runs have no committed record" in out
    assert sum(r["agree"] for r in rows) == 1 and len(rows) == 4  # only the committed run's line agrees
    assert len(list((tmp_path / "fresh" / "smoke").glob("*/record.json"))) == 4
    assert not (committed / "smoke" / list(grid.values())[1].run_id).exists()  # nothing written over the committed


def test_reproduce_with_overrides_compares_against_the_committed_grid_without_them(tmp_path, monkeypatch, capsys):
    exp = fake_experiment()
    monkeypatch.setattr(reproduce, "experiment", lambda nb: exp)
    import fgic.profiles

    monkeypatch.setattr(fgic.profiles, "settings", lambda nb, profile, overrides=None: types.SimpleNamespace(
        threads=2 if overrides and "threads=2" in overrides else 1))
    committed = tmp_path / "runs"
    monkeypatch.setenv("FGIC_RUNS", str(committed))
    one = exp.grid(types.SimpleNamespace(threads=1))
    for spec in one.values():  # the whole grid committed at 1 thread
        d = committed / "smoke" / spec.run_id
        d.mkdir(parents=True)
        (d / "record.json").write_text(json.dumps({"status": "finished", "run_id": spec.run_id, "metrics": {}}))
    rows = reproduce.reproduce("00", profile="smoke", folder=tmp_path / "fresh", overrides=["threads=2"], workers=1)
    assert "no committed record" not in capsys.readouterr().out
    assert all(r["agree"] for r in rows) and len(rows) == 4  # "ran" on both sides
    two = {s.run_id for s in exp.grid(types.SimpleNamespace(threads=2)).values()}
    fresh = {p.parent.name for p in (tmp_path / "fresh" / "smoke").glob("*/record.json")}
    assert fresh == two and not fresh & {s.run_id for s in one.values()}  # the rerun trained the 2-thread grid
