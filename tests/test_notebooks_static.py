"""Static checks of the numbered notebooks' code (no kernel): prediction through the run's Predictor, own-data
and override parameters in every notebook, typed settings read as attributes."""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# fgic modules allowed to call Record.load_model, and why (none of them predicts with the bare model)
LOAD_MODEL_OK = {
    "runs.py": "defines Record.load_model",
    "predict.py": "Predictor.from_record: the model half of the Predictor",
    "finetune.py": "starts a new run from a finished run's weights (no prediction)",
}


def code_cells(nb: Path) -> list[dict]:
    return [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]


def test_all_six_notebooks_found():
    assert [p.name[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_predict_through_the_predictor(nb):
    hits = [i for i, c in enumerate(code_cells(nb)) if "load_model(" in "".join(c["source"])]
    assert not hits, f"{nb.name}: code cells {hits} call load_model(); use rec.predictor() (model + loss head)"
    assert any(".predictor(" in "".join(c["source"]) for c in code_cells(nb)), f"{nb.name} never builds a Predictor"


def test_package_predicts_through_the_predictor():
    offenders = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "fgic").rglob("*.py"))
        if p.name not in LOAD_MODEL_OK and re.search(r"\bload_model\(", p.read_text())
    ]
    assert not offenders, f"load_model() outside {sorted(LOAD_MODEL_OK)}: {offenders} (use Record.predictor)"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_take_own_data_as_parameters(nb):
    cells = code_cells(nb)
    params = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{nb.name}: one cell tagged parameters"
    src = "".join(cells[params[0]]["source"])
    literals = {}
    for node in ast.parse(src).body:  # raw literals only, as papermill injects them
        assert isinstance(node, ast.Assign), f"{nb.name}: parameters cell holds only assignments"
        literals[node.targets[0].id] = ast.literal_eval(node.value)
    for name in ("DATASET", "DATA_ROOT", "DATA_FILE", "OVERRIDES"):
        assert literals.get(name) == "", f"{nb.name}: parameter {name} = '' (the profile's own data) missing"
    nxt = "".join(cells[params[0] + 1]["source"])
    call = re.search(r"fgic\.session\((.*?)\)\n", nxt, re.S)
    assert call, f"{nb.name}: the cell after the parameters calls fgic.session"
    for arg in ("PROFILE, OVERRIDES", "dataset=DATASET", "data_root=DATA_ROOT", "data_file=DATA_FILE"):
        assert arg in call.group(1), f"{nb.name}: fgic.session(..., {arg})"
    assert nxt.rstrip().endswith("S.table()  # the settings that matter; print(S) shows all of them")
    papermill = pytest.importorskip("papermill")
    assert list(papermill.inspect_notebook(str(nb))) == list(literals)  # papermill parses every parameter


@pytest.mark.parametrize("nb", NOTEBOOKS[1:], ids=lambda p: p.stem)
def test_paper_tables_judge_run_health(nb):
    """Notebooks 01-05: every paper-vs-ours table shows a failed run as failed, and the notebook lists them
    (``exp.tables``: ``fgic.evidence.compare`` tables, which count failed seeds and never average them in)."""
    src = "\n".join("".join(c["source"]) for c in code_cells(nb))
    calls = re.findall(r"paper_vs_ours\((.*?)\)\s*(?:#|\n)", src, re.S)
    evidence = ".tables(S, " in src or "exp.table(" in src  # fgic.evidence.compare tables judge every seed
    assert calls or "paper_and_ours(" in src or evidence, f"{nb.name} has no paper-vs-ours table"
    assert all("health=True" in c for c in calls), f"{nb.name}: paper_vs_ours(..., health=True) in every table"
    assert "failed_runs(" in src or "run_health(" in src or evidence, f"{nb.name} never checks its runs' health"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_read_settings_as_attributes(nb):
    src = "\n".join("".join(c["source"]) for c in code_cells(nb))
    hits = re.findall(r"\bS\[|\bS\.get\(|\bin S\b(?!\.)", src)
    assert not hits, f"{nb.name}: {hits}: read the typed settings as attributes (S.train, S.benchmark.image_size)"


def test_experiments_read_settings_as_attributes():
    for p in sorted((ROOT / "fgic" / "experiments").glob("*.py")):
        hits = re.findall(r"\bS\[|\bS\.get\(|\bin S\b(?!\.)", p.read_text())
        assert not hits, f"{p.name}: {hits}: read the typed settings as attributes"
