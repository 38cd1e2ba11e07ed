"""run-notebooks trains every notebook's grid in one queue first (fgic.notebooks.pretrain), longest runs first."""

import json
import types

import fgic.plan
import fgic.profiles
import fgic.runs
from fgic import notebooks, reproduce
from tests.test_reproduce import fake_experiment


def fake_modules(monkeypatch, seconds, skip=()):
    """Three fake experiments whose first spec is timed at ``seconds[name]``; ``skip`` ones set PRETRAIN = False."""
    exps = {}
    for name in seconds:
        exp = fake_experiment()
        fixed = {f"{name}:{k}": v for k, v in exp.grid(None).items()}  # the same spec objects on every call
        exp.grid = lambda S, fixed=fixed: fixed
        if name in skip:
            exp.PRETRAIN = False
        exps[name] = exp
    monkeypatch.setattr(reproduce, "EXPERIMENTS", {n: f"fake.{n}" for n in seconds})
    monkeypatch.setattr(reproduce, "experiment", lambda nb: exps[nb])
    monkeypatch.setattr(fgic.profiles, "settings", lambda nb, profile, overrides=None: types.SimpleNamespace())
    first = {id(next(iter(e.grid(None).values()))): seconds[n] for n, e in exps.items()}
    monkeypatch.setattr(fgic.plan, "spec_seconds", lambda spec: first.get(id(spec), 0.0))
    calls = []
    monkeypatch.setattr(fgic.runs, "train_many", lambda specs, **kw: calls.append(kw) or [None] * len(specs))
    return calls


def test_pretrain_queues_the_grids_longest_first_and_leaves_opted_out_notebooks(monkeypatch):
    calls = fake_modules(monkeypatch, {"00_a": 1.0, "01_b": 9.0, "02_c": 5.0, "07_d": 99.0}, skip={"07_d"})
    res = notebooks.pretrain(["00_a", "01_b", "02_c", "07_d", "99_no_experiment"], "smoke", retrain=True)
    assert res == {"runs": 12, "error": "", "sizes": {"00_a": 4, "01_b": 4, "02_c": 4}}
    (kw,) = calls
    assert [n.split(":")[0] for n in kw["names"][::4]] == ["01_b", "02_c", "00_a"]  # 4 runs per fake grid
    assert kw["group"] == "smoke" and kw["retrain"] is True


def test_pretrain_returns_a_failure_for_the_notebook_to_report(monkeypatch):
    fake_modules(monkeypatch, {"00_a": 1.0})

    def boom(specs, **kw):
        raise RuntimeError("no data here")

    monkeypatch.setattr(fgic.runs, "train_many", boom)
    res = notebooks.pretrain(["00_a"], "smoke")
    assert res["runs"] == 4 and res["error"] == "RuntimeError: no data here"


def test_pretrained_runs_are_reused_by_the_grid(tmp_path, monkeypatch):
    """The real queue trains a tiny fake grid; a second train_many of the same grid trains nothing."""
    exp = fake_experiment()
    monkeypatch.setattr(reproduce, "EXPERIMENTS", {"00_a": "fake"})
    monkeypatch.setattr(reproduce, "experiment", lambda nb: exp)
    monkeypatch.setattr(fgic.profiles, "settings", lambda nb, profile, overrides=None: types.SimpleNamespace())
    monkeypatch.setenv("FGIC_RUNS", str(tmp_path))
    assert notebooks.pretrain(["00_a"], "smoke") == {"runs": 4, "error": "", "sizes": {"00_a": 4}}
    stamps = {p: json.loads(p.read_text())["finished"] for p in tmp_path.glob("smoke/*/record.json")}
    assert len(stamps) == 4
    fgic.runs.train_many(list(exp.grid(None).values()), group="smoke", workers=1)
    assert {p: json.loads(p.read_text())["finished"] for p in tmp_path.glob("smoke/*/record.json")} == stamps
