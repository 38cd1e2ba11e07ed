"""fgic.experiments.base: one run-name format, cells for the evidence tables, computed conclusions."""

import pytest

from fgic.experiments import base


def rec(top1):
    return {"status": "finished", "metrics": {"test_top1": top1}, "num_classes": 10, "run_id": "r",
            "history": [{"epoch": e, "train_loss": 1.0} for e in (1, 2, 3)]}


def test_run_name_round_trip_and_errors():
    name = base.run_name("benchmark", "VGG16/MA-Ours", 2)
    assert name == "benchmark:VGG16/MA-Ours:s2"
    assert base.parse_run_name(name) == ("benchmark", "VGG16/MA-Ours", 2)
    assert base.parse_run_name("cub:A:B:s10") == ("cub", "A:B", 10)  # a ':' inside the row label is kept
    with pytest.raises(ValueError, match="run name"):
        base.parse_run_name("acanet18-ce-synthetic-s0")
    with pytest.raises(ValueError, match="':'"):
        base.run_name("a:b", "row", 0)


def test_cells_group_seeds_by_row_and_mark_missing_seeds():
    records = {base.run_name("benchmark", r, s): rec(v) for r, s, v in
               [("A", 0, 0.5), ("A", 1, 0.6), ("B", 0, 0.7), ("B", 2, 0.8)]}
    records[base.run_name("cub", "A", 0)] = rec(0.1)  # another data set: not in the benchmark's cells
    c = base.cells(records, "benchmark", ["A", "B"])
    assert {r: sorted(v) for r, v in c.items()} == {"A": [0, 1], "B": [0, 2]}
    c = base.cells(records, "benchmark", ["A", "B"], seeds=[0, 1, 2])
    assert c["A"][2] is None and c["B"][1] is None and c["B"][2]["metrics"]["test_top1"] == 0.8


def test_table_conclusions_skip_the_baseline_and_carry_verdicts():
    from fgic import evidence

    records = {base.run_name("benchmark", r, s): rec(v) for r, s, v in
               [("base", 0, 0.50), ("base", 1, 0.52), ("base", 2, 0.51),
                ("new", 0, 0.60), ("new", 1, 0.63), ("new", 2, 0.61)]}
    t = evidence.compare(base.cells(records, "benchmark", ["base", "new"]), baseline="base")
    (c,) = base.table_conclusions("t1", t, "base")
    assert c.key == "t1/new" and c.verdict == "B better" and c.text.startswith("new vs base: +10.3 points")


def test_paper_frame_and_column():
    df = base.paper_frame([("table1", "cub", "ResNet50", "top1", 84.5), ("table1", "cub", "CA", "top1", None),
                           ("table1", "dogs", "ResNet50", "top1", 82.0)])
    assert list(df.columns) == base.PAPER_COLUMNS and len(df) == 2
    assert base.paper_column(df, "table1", "cub") == {"ResNet50": 84.5}


def test_seeds_by_row_groups_run_names():
    names = [base.run_name("benchmark", "A", 2), base.run_name("benchmark", "A", 0), base.run_name("cub", "A", 1)]
    assert base.seeds_by_row(names) == {("benchmark", "A"): [0, 2], ("cub", "A"): [1]}


def test_extra_seeds_extend_the_grid_and_the_cells_and_close_rows_names_what_needs_them():
    from fgic import evidence
    from fgic.runs import RunSpec

    def grid(S):
        return {base.run_name("benchmark", r, s): RunSpec(model="resnet18", model_kw={"lr": r}, train={"seed": s})
                for r in ("A", "B", "C") for s in (0, 1, 2)}

    S = type("S", (), {"extra_seeds": {"A": [3, 4], "B": [3, 4]}})()
    g = base.with_extra_seeds(grid)(S)
    assert len(g) == 13 and "benchmark:C:s3" not in g
    assert g["benchmark:B:s4"].train == {"seed": 4} and g["benchmark:B:s4"].model_kw == {"lr": "B"}
    # A baseline, B within 2 points of it on 3 seeds, C 10 points above
    vals = {"A": [0.60, 0.62, 0.64, 0.61, 0.63], "B": [0.61, 0.62, 0.66, 0.60, 0.65], "C": [0.70, 0.72, 0.74]}
    records = {base.run_name("benchmark", r, s): rec(v) for r, vs in vals.items() for s, v in enumerate(vs)}
    three = {n: r for n, r in records.items() if base.parse_run_name(n)[2] < 3}
    t3 = evidence.compare(base.cells(three, "benchmark", ["A", "B", "C"], seeds=[0, 1, 2]), "A")
    assert base.close_rows({"t": t3}) == [("t", "B", "A")]  # C is 10 points away: 3 seeds are enough
    cells = base.cells(records, "benchmark", ["A", "B", "C"], seeds=[0, 1, 2])
    assert sorted(cells["B"]) == [0, 1, 2, 3, 4] and sorted(cells["C"]) == [0, 1, 2]  # the extra seeds are read
    t5 = evidence.compare(cells, "A")
    assert t5.loc["B", "n_paired"] == 5 and base.close_rows({"t": t5}) == []


def test_seeds_text_counts_extra_seeds_per_row():
    from types import SimpleNamespace

    S = SimpleNamespace(seeds=[0, 1, 2], extra_seeds={"CA": [3, 4], "MA": [2, 3, 4]})  # MA's seed 2 is not extra
    assert base.seeds_text(S, ["Baseline", "CA", "MA"]) == "3-5 seeds (5: CA, MA)"
    assert base.seeds_text(S, ["Baseline"]) == "3 seeds"
    assert base.seeds_text(S, ["V/CA", "V/MA"], label=lambda r: r.split("/")[-1]) == "3 seeds"  # no extra for V/...
    S.extra_seeds["V/CA"] = [3]
    assert base.seeds_text(S, ["V/CA", "V/MA"], label=lambda r: r.split("/")[-1]) == "3-4 seeds (4: CA)"
    assert base.seeds_text(SimpleNamespace(seeds=[0], extra_seeds={}), ["x"]) == "1 seed"
