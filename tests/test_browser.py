"""Every notebook in JupyterLab in a real browser (headless Chromium), in the smoke profile.

Per notebook: open it, run all cells, and assert that no cell raised, that every PNG output rendered as an
image, that every markdown cell with LaTeX was typeset by MathJax, then save it, close it, reopen it and
assert that no widget shows "Error displaying widget". In notebook 00 the heatmap explorer must fit a
1280x800 window and change its image when a control moves. Screenshots go to ``test-artifacts/browser/``.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package (no browser
download); skips with the reason where either is missing. Marker: ``browser``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from browser import (
    CHROMIUM_FLAGS,
    JS_CLOSE_ALL,
    JS_DONE,
    JS_ERRORS,
    JS_MATH,
    JS_MERMAID,
    JS_PNG_COUNT,
    JS_READY,
    JS_RENDERED_IMAGES,
    JS_RUN_ALL,
    JS_SAVE,
    JS_SAVED,
    JS_SHUTDOWN,
    JS_TEXT,
    Lab,
    chromium_path,
)

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PAPER_NOTEBOOKS = ("01", "02", "03", "04", "05")  # each teaches its paper's equations (typeset by MathJax)
ARTIFACTS = ROOT / "test-artifacts" / "browser"
VIEWPORT = {"width": 1280, "height": 800}
RUN_TIMEOUT_S = 600  # one notebook, smoke profile

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
if chromium_path() is None:
    pytest.skip("Chromium not found: install Debian's package (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    work = tmp_path_factory.mktemp("lab")
    nb_dir = work / "notebooks"
    nb_dir.mkdir()
    for name in NOTEBOOKS:  # run copies: the repository's notebooks stay output-free
        shutil.copy(ROOT / "notebooks" / name, nb_dir / name)
    env = {
        "FGIC_PROFILE": "smoke",
        "FGIC_RUNS": str(work / "runs"),
        "FGIC_FIGURES": str(work / "figures"),
        "MPLCONFIGDIR": str(work / "mpl"),
        "JUPYTER_CONFIG_DIR": str(work / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(work / "jupyter-runtime"),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with Lab(nb_dir, work / "settings", env, ARTIFACTS / "jupyterlab.log") as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield b
        b.close()


def _open(page, lab: Lab, name: str) -> None:
    page.goto(lab.open_url(name))
    page.wait_for_function(JS_READY, timeout=120_000, polling=500)


def _explorer_check(page, name: str) -> None:
    """The explorer fits the window and its image changes when the class dropdown moves."""
    box = page.locator(".jp-OutputArea-output .widget-hbox:has(select):has(img)").first
    select = box.locator("select").first
    box.scroll_into_view_if_needed()
    bb = box.bounding_box()
    assert bb is not None, "the explorer widget did not render"
    page.screenshot(path=str(ARTIFACTS / f"{Path(name).stem}-explorer.png"))
    assert bb["height"] <= VIEWPORT["height"] - 100, f"explorer is {bb['height']:.0f} px tall: it does not fit 1280x800"
    assert bb["width"] <= VIEWPORT["width"], f"explorer is {bb['width']:.0f} px wide"
    img = box.locator("img").first
    before = img.get_attribute("src")
    options = select.locator("option").all_text_contents()
    assert len(options) >= 2, options
    select.select_option(index=len(options) - 1)
    page.wait_for_function(
        "([el, src]) => el.getAttribute('src') !== src", arg=[img.element_handle(), before], timeout=30_000
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab(lab, browser, name):
    page = browser.new_page(viewport=VIEWPORT)
    try:
        _open(page, lab, name)
        t0 = time.monotonic()
        page.evaluate(JS_RUN_ALL)
        page.wait_for_function(JS_DONE, timeout=RUN_TIMEOUT_S * 1000, polling=1000)
        seconds = time.monotonic() - t0
        page.screenshot(path=str(ARTIFACTS / f"{Path(name).stem}-top.png"))
        errors = page.evaluate(JS_ERRORS)
        assert not errors, f"{name}: cells raised in JupyterLab: {errors}"
        text = page.evaluate(JS_TEXT)
        assert "Traceback" not in text and "Error displaying widget" not in text
        pngs = page.evaluate(JS_PNG_COUNT)
        assert pngs > 0, f"{name}: no figure was produced"
        page.wait_for_function(f"() => ({JS_RENDERED_IMAGES})() >= {pngs}", timeout=30_000)
        math = page.evaluate(JS_MATH)
        if name[:2] in PAPER_NOTEBOOKS:
            assert math["cells_with_math"], f"{name}: a paper notebook without equations"
        if math["cells_with_math"]:
            assert math["rendered"] >= math["cells_with_math"], f"{name}: MathJax did not typeset: {math}"
        diagrams = page.evaluate(JS_MERMAID)
        assert diagrams["diagrams"], f"{name}: no block diagram (a ```mermaid block) in the notebook"
        page.wait_for_function(f"() => ({JS_MERMAID})().rendered >= {diagrams['diagrams']}", timeout=30_000)
        if "explorer" in text.lower() and page.locator(".jupyter-widgets select").count():
            _explorer_check(page, name)
        page.evaluate(JS_SAVE)
        page.wait_for_function(JS_SAVED, timeout=30_000)
        page.evaluate(JS_SHUTDOWN)  # a later session: the kernel that held the widgets is gone
        page.evaluate(JS_CLOSE_ALL)
        page.reload()
        _open(page, lab, name)  # reopened: outputs come from the saved file, widgets from its stored state
        page.wait_for_timeout(3000)
        page.screenshot(path=str(ARTIFACTS / f"{Path(name).stem}-reopened.png"), full_page=False)
        widget = page.locator(".jp-OutputArea-output .widget-hbox:has(img)")
        if widget.count():
            widget.first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / f"{Path(name).stem}-explorer-reopened.png"))
        reopened = page.evaluate(JS_TEXT)
        assert "Error displaying widget" not in reopened, f"{name}: a widget lost its state after reopening"
        print(f"{name}: ran in {seconds:.0f} s, {pngs} figures, math {math}, diagrams {diagrams}")
    finally:
        page.close()


def test_the_math_check_sees_typeset_equations(lab, browser):
    """The MathJax assertion above can fail: a notebook with LaTeX gets mjx-container elements, one per equation."""
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    nb.cells = [
        nbformat.v4.new_markdown_cell(r"Eq. (4): $$W_{fused} = W_{3\times3} + W_{1\times3} + W_{3\times1}$$"),
        nbformat.v4.new_markdown_cell(r"inline $\alpha + \beta$ and none here"),
        nbformat.v4.new_code_cell("1 + 1"),
    ]
    nbformat.write(nb, lab.root / "zz_math.ipynb")
    page = browser.new_page(viewport=VIEWPORT)
    try:
        _open(page, lab, "zz_math.ipynb")
        page.wait_for_function(f"() => ({JS_MATH})().rendered >= 2", timeout=60_000)
        assert page.evaluate(JS_MATH) == {"cells_with_math": 2, "rendered": 2}
    finally:
        page.close()
        (lab.root / "zz_math.ipynb").unlink()
