"""The committed default-profile records (the published results) meet the evidence rules of the workspace.

- every compared row whose difference is under ``base.CLOSE`` (2) points has ``base.CLOSE_SEEDS`` (5) paired seeds
  (``base.close_rows`` is empty): the rows listed in each notebook's ``extra_seeds``;
- every run of the benchmark notebooks learned: test top-1 at least 5 x chance (``fgic.health.learn_threshold``),
  or it is a failed seed that the tables report with its reason (``fgic.health.run_health``), never averaged in.

Skipped where a notebook has no committed records (a checkout without ``runs/default``).
"""

from pathlib import Path

import pytest

from fgic import evidence, profiles, reproduce
from fgic.experiments import base
from fgic.health import learn_threshold, run_health

NOTEBOOKS = ["00", "01", "02", "03", "04", "05"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def published_runs(monkeypatch):
    monkeypatch.setenv("FGIC_RUNS", str(ROOT / "runs"))  # the committed records, not the tests' scratch folder


def committed(nb):
    exp = reproduce.experiment(nb)
    S = profiles.settings(exp.NOTEBOOK, "default", overrides=[])
    grid = exp.grid(S)
    R = reproduce.stored_records(grid, "default")
    if len(R) < len(grid):
        pytest.skip(f"{exp.NOTEBOOK}: {len(grid) - len(R)} of {len(grid)} default runs not committed")
    return exp, S, R


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_differences_under_two_points_have_five_seeds(nb, monkeypatch):
    """The rule as it is applied: a compared row whose difference over the first seeds (``S.seeds``, three) is under
    2 points is trained with 5 paired seeds (``extra_seeds``), and so is its reference row. Counted over trained
    seeds: a seed that did not learn (reported as failed) still counts as trained."""
    import fgic.health

    monkeypatch.setattr(fgic.health, "LEARN_EPOCHS", 10**6)  # pairs over every finished, non-collapsed seed
    exp, S, R = committed(nb)
    first = {n: r for n, r in R.items() if base.parse_run_name(n)[2] in S.seeds}
    close = base.close_rows(exp.tables(S, first), need=base.CLOSE_SEEDS)  # every row under 2 points at 3 seeds
    full = exp.tables(S, R)
    short = [(t, row, ref) for t, row, ref in close if full[t].loc[row, "n_paired"] < base.CLOSE_SEEDS]
    assert short == [], "add these rows (and their reference) to extra_seeds in params"


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_every_run_learned_or_is_reported_as_failed(nb):
    exp, S, R = committed(nb)
    low = {n: r["metrics"]["test_top1"] for n, r in R.items()
           if r["metrics"]["test_top1"] < learn_threshold(int(r["num_classes"]))}
    for name in low:  # below 5x chance: a failed seed, with the reason the tables print
        ok, why = run_health(R[name])
        assert not ok and why.startswith("did not learn"), (name, why)
    tables = exp.tables(S, R)
    for name in low:
        _, row, seed = base.parse_run_name(name)
        assert any(row in t.index and f"seed {seed}" in str(t.loc[row, "failed"]) for t in tables.values()
                   if "failed" in t), f"{name} below 5x chance is not reported as failed in any table"


def test_the_learn_rule_is_the_one_the_tables_apply():
    rec = {"status": "finished", "metrics": {"test_top1": 0.45}, "num_classes": 10, "run_id": "r",
           "history": [{"epoch": e, "train_loss": 1.0} for e in (1, 2, 3)]}
    ok, failed = evidence.healthy({0: rec, 1: {**rec, "metrics": {"test_top1": 0.55}}})
    assert list(ok) == [1] and failed[0].startswith("did not learn")
