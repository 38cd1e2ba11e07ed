"""fgic.viz and fgic.widgets: artists drawn, table semantics, deterministic saving, explorer callbacks."""

import os
import tempfile

os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-"))

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PathCollection, QuadMesh  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from fgic import viz, widgets  # noqa: E402


def _record(run_id, name, accs, test_top1=0.5):
    hist = [{"epoch": e + 1, "train_loss": 1.0 / (e + 1), "val_acc": a - 0.01, "test_acc": a}
            for e, a in enumerate(accs)]
    return {"run_id": run_id, "name": name, "status": "finished", "history": hist,
            "metrics": {"test_top1": test_top1, "val_top1": test_top1 - 0.02}}


def _bars(ax):
    return [p for c in ax.containers if isinstance(c, BarContainer) for p in c.patches]


# ------------------------------------------------------------------------------------------ savefig
def _simple_fig(seed=0):
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot(np.random.default_rng(seed).normal(size=10))
    return fig


def test_savefig_is_deterministic_and_atomic(tmp_path):
    p1 = viz.savefig(_simple_fig(), "01_test_fig", folder=tmp_path)
    b1 = p1.read_bytes()
    p2 = viz.savefig(_simple_fig(), "01_test_fig.png", folder=tmp_path)  # a fresh, identical figure
    assert p1 == p2 == tmp_path / "01_test_fig.png"
    assert p2.read_bytes() == b1 and b1[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"matplotlib" not in b1  # no Software metadata
    assert sorted(os.listdir(tmp_path)) == ["01_test_fig.png"]  # no temporary file left behind
    viz.savefig(_simple_fig(seed=1), "01_test_fig", folder=tmp_path)
    assert (tmp_path / "01_test_fig.png").read_bytes() != b1  # different content, different bytes
    with pytest.raises(ValueError):
        viz.savefig(_simple_fig(), "../escape", folder=tmp_path)


def test_savefig_location(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    (root / "notebooks" / "deep").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "fgic"\n')
    other = root / "notebooks" / "pyproject.toml"  # a different project on the way up is skipped
    other.write_text('[project]\nname = "other"\n')
    monkeypatch.delenv("FGIC_FIGURES", raising=False)
    monkeypatch.chdir(root / "notebooks" / "deep")
    assert viz.savefig(_simple_fig(), "a") == root.resolve() / "figures" / "a.png"
    env_dir = tmp_path / "env_figs"
    monkeypatch.setenv("FGIC_FIGURES", str(env_dir))
    assert viz.savefig(_simple_fig(), "b") == env_dir / "b.png" and (env_dir / "b.png").is_file()
    monkeypatch.delenv("FGIC_FIGURES")
    lone = tmp_path / "lone"
    lone.mkdir()
    monkeypatch.chdir(lone)
    assert viz.savefig(_simple_fig(), "c") == lone.resolve() / "figures" / "c.png"


def test_savefig_accepts_axes(tmp_path):
    ax = viz.plot_per_class([0.2, 0.8], ["a", "b"])
    assert viz.savefig(ax, "axes", folder=tmp_path).read_bytes() == viz.fig_to_png(ax.figure)


# ------------------------------------------------------------------------------------------- plots
def test_plot_curves_lines_and_metrics_mode():
    recs = [_record("r1", "resnet18", [0.1, 0.3, 0.5]), _record("r2", "acanet", [0.2, 0.4])]
    ax = viz.plot_curves(recs, metric="test_acc")
    lines = ax.get_lines()
    assert len(lines) == 2 and [ln.get_label() for ln in lines] == ["resnet18", "acanet"]
    assert list(lines[0].get_xdata()) == [1, 2, 3] and list(lines[1].get_ydata()) == [0.2, 0.4]
    assert ax.get_title() == "test_acc" and ax.get_legend() is not None
    ax = viz.plot_curves(recs, metrics=("val_acc", "test_acc"), labels=["x", "y"], title="curves")
    assert len(ax.get_lines()) == 4 and ax.get_title() == "curves"
    assert {ln.get_label() for ln in ax.get_lines()} == {"x val_acc", "x test_acc", "y val_acc", "y test_acc"}
    ax = viz.plot_curves(recs[0], metric="train_loss")  # a single record
    assert np.allclose(ax.get_lines()[0].get_ydata(), [1.0, 0.5, 1 / 3])


def test_plot_ablation_bars_errorbars_points():
    data = {"baseline": [0.50, 0.52, 0.54], "+ACB": [0.60, 0.61], "+FCSA": [0.7]}
    ax = viz.plot_ablation(data, title="ablation", baseline="baseline")
    bars = _bars(ax)
    assert len(bars) == 3
    assert np.allclose([b.get_height() for b in bars], [0.52, 0.605, 0.7])
    err = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(err) == 1
    segs = err[0].lines[2][0].get_segments()  # one vertical segment per bar: mean -/+ std
    assert np.allclose([s[1, 1] - s[0, 1] for s in segs], [2 * np.std(v, ddof=1) if len(v) > 1 else 0
                                                           for v in data.values()])
    pts = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in pts) == 6  # every seed shown
    assert ax.get_title() == "ablation"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(data)
    long = pd.DataFrame([{"label": k, "value": v} for k, vs in data.items() for v in vs])
    ax2 = viz.plot_ablation(long)
    assert np.allclose([b.get_height() for b in _bars(ax2)], [b.get_height() for b in bars])
    wide = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 5.0]})
    assert np.allclose([b.get_height() for b in _bars(viz.plot_ablation(wide))], [1.5, 4.0])


def test_plot_confusion_normalised_rows():
    cm = np.array([[5, 5, 0], [0, 10, 0], [1, 2, 7]])
    ax = viz.plot_confusion(cm, ["a", "b", "c"], normalize=True)
    mesh = [c for c in ax.collections if isinstance(c, QuadMesh)][0]
    arr = np.asarray(mesh.get_array()).reshape(3, 3)
    assert np.allclose(arr.sum(axis=1), 1.0) and np.isclose(arr[0, 0], 0.5)
    assert len(ax.texts) == 9 and ax.get_title().startswith("confusion")
    raw = viz.plot_confusion(cm, ["a", "b", "c"], normalize=False)
    mesh = [c for c in raw.collections if isinstance(c, QuadMesh)][0]
    assert np.allclose(np.asarray(mesh.get_array()).reshape(3, 3), cm)


def test_plot_per_class_sorted_with_mean_line():
    acc = [0.9, 0.1, 0.5, 0.7]
    ax = viz.plot_per_class(acc, ["w", "x", "y", "z"], title="per class")
    assert [b.get_height() for b in _bars(ax)] == sorted(acc)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "z", "w"]
    assert np.isclose(ax.get_lines()[0].get_ydata()[0], np.mean(acc)) and ax.get_title() == "per class"


def test_image_grid_heatmaps_boxes_and_denormalisation():
    torch.manual_seed(0)
    x = torch.randn(3, 3, 16, 12)  # (B, 3, H, W)
    hm = torch.rand(3, 4, 3)  # a coarser map, stretched to the image
    boxes = [[(1, 2, 8, 10, "object")], [], [(0, 0, 4, 4), (2, 2, 6, 6, "head")]]
    fig = viz.image_grid(x, titles=["a", "b", "c"], heatmaps=hm, boxes=boxes, ncols=2, denormalize=True)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    ims = [[a for a in ax.get_children() if isinstance(a, AxesImage)] for ax in fig.axes]
    assert [len(i) for i in ims] == [2, 2, 2, 0]
    rects = [[p for p in ax.patches if isinstance(p, Rectangle)] for ax in fig.axes[:3]]
    assert [len(r) for r in rects] == [1, 0, 2]
    assert rects[0][0].get_width() == 7 and rects[0][0].get_height() == 8
    assert [t.get_text() for t in fig.axes[2].texts] == ["head"]
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    expected = (x[0].permute(1, 2, 0).numpy() * viz.IMAGENET_STD + viz.IMAGENET_MEAN).clip(0, 1)
    assert np.allclose(ims[0][0].get_array(), expected, atol=1e-6)
    assert list(ims[0][1].get_extent()) == list(ims[0][0].get_extent()) == [-0.5, 11.5, 15.5, -0.5]


# --------------------------------------------------------------------------------------- paper vs ours
def test_paper_vs_ours_numbers_only_from_runs():
    rows = [
        {"setting": "R50 / CUB", "paper": 86.4, "run": None, "dataset": "CUB"},
        {"setting": "R18 / synthetic", "paper": None, "run": _record("ab12cd34", "r18", [0.4], 0.6125)},
        {"setting": "R18 / val", "paper": 80.0, "run": _record("ef56", "r18", [0.4], 0.7),
         "metric": "val_top1"},
        {"setting": "hist", "paper": 50.0, "run": {"run_id": "h1", "history": [{"test_acc": 0.3}]},
         "metric": "test_acc"},
    ]
    df = viz.paper_vs_ours(rows)
    assert list(df.columns[:5]) == ["setting", "paper", "ours", "run", "metric"] and "dataset" in df
    assert df.loc[0, "ours"] == "not run here (needs the real data set / GPU)" and df.loc[0, "run"] == ""
    assert df.loc[1, "ours"] == pytest.approx(61.25) and df.loc[1, "run"] == "ab12cd34"
    assert np.isnan(df.loc[1, "paper"])
    assert df.loc[2, "ours"] == pytest.approx(68.0) and df.loc[2, "run"] == "ef56"
    assert df.loc[3, "ours"] == pytest.approx(30.0)
    for r in df.itertuples():  # a number in `ours` always comes with the run that produced it
        assert isinstance(r.ours, str) == (r.run == "")
    with pytest.raises(ValueError):
        viz.paper_vs_ours([{"setting": "x", "paper": 1.0, "ours": 99.0}])
    with pytest.raises(ValueError):
        viz.paper_vs_ours([{"setting": "x", "paper": 1.0, "run": {"metrics": {"test_top1": 0.5}}}])
    with pytest.raises(ValueError):
        viz.paper_vs_ours([{"setting": "x", "paper": 1.0, "run": {"run_id": "a", "metrics": {}}}])

    ax = viz.plot_bars_compare(df)  # rows 2 and 3 have both numbers; row 0 has the paper's only
    assert len(_bars(ax)) == 3 + 2  # three paper bars, two of ours
    assert [t.get_text() for t in ax.texts if t.get_gid() != viz.ABSENT_GID] == ["ef56", "h1"]
    assert [t.get_text() for t in ax.texts if t.get_gid() == viz.ABSENT_GID] == ["not run"]
    empty = viz.plot_bars_compare(df.iloc[:2])
    assert not _bars(empty) and "nothing to compare" in empty.texts[0].get_text()


def _absent(ax):
    return [p for p in ax.patches if p.get_gid() == viz.ABSENT_GID], [
        t.get_text() for t in ax.texts if t.get_gid() == viz.ABSENT_GID]


def test_missing_and_failed_runs_are_absent_slots_not_zero_bars():
    """Issue 10, items 15 and 17: no zero-height bar for a run that is missing or failed."""
    ax = viz.plot_ablation({"base": [0.5, 0.6], "missing": [], "ok": [0.7]},
                           failed={"ok": ["collapsed"], "dead": ["diverged: train_loss = nan"]})
    assert all(b.get_height() > 0 for b in _bars(ax))  # only labels with values get a bar
    assert np.allclose([b.get_height() for b in _bars(ax)], [0.55, 0.7])
    patches, texts = _absent(ax)
    assert len(patches) == 2 and all(p.get_hatch() for p in patches)
    assert texts == ["not run", "failed: diverged: train_loss = nan"]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[2] == "ok\n1 ok + 1 failed (collapsed)" and ticks[3].startswith("dead\n0 ok + 1 failed")

    good = _record("g1", "good", [0.4, 0.6], 0.6)
    collapsed = {**_record("c1", "bad", [0.1, 0.09], 0.09), "num_classes": 10}
    df = viz.paper_vs_ours([{"setting": "a", "paper": 50.0, "run": good},
                            {"setting": "b", "paper": 50.0, "run": collapsed},
                            {"setting": "c", "paper": 50.0, "run": None}], health=True)
    assert df.loc[0, "ours"] == pytest.approx(60.0)
    assert df.loc[1, "ours"].startswith("failed: collapsed") and df.loc[1, "run"] == "c1"
    assert viz.paper_vs_ours([{"setting": "b", "paper": 50.0, "run": collapsed}]).loc[0, "ours"] == 9.0
    ax = viz.plot_bars_compare(df)
    assert len(_bars(ax)) == 3 + 1  # three paper bars, one of ours
    patches, texts = _absent(ax)
    assert len(patches) == 2 and texts[0].startswith("failed: collapsed") and texts[1] == "not run"


# --------------------------------------------------------------------------------------- explorer
class _ToyData:
    """Three classes, two images each; annotations in a 2x larger 'original' image."""

    classes = ["alpha", "beta", "gamma"]

    def __init__(self, with_targets=True):
        self._labels = [0, 1, 2, 0, 1, 2]
        if with_targets:
            self.targets = list(self._labels)

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.randn(3, 16, 16, generator=g), self._labels[i]

    def annotation(self, i):
        return {"object": (4, 4, 20, 24), "parts": {"head": (8, 8)}, "size": (32, 32)}


def test_example_boxes_scaled_to_tensor():
    boxes = widgets.example_boxes(_ToyData(), 0, (16, 16))
    assert boxes == {"object": (2.0, 2.0, 10.0, 12.0), "head": (4.0, 4.0)}


def test_explorer_callbacks_change_the_image():
    calls = []

    def heat(x, y):
        calls.append((tuple(x.shape), y.tolist()))
        return torch.linspace(0, 1, 16).expand(1, 16, 16)  # (1, h, w)

    ex = widgets.explorer(_ToyData(), heat)
    first = ex.image.value
    assert first[:4] == b"\x89PNG" and calls[-1] == ((1, 3, 16, 16), [0])
    ex.index.value = 4
    assert ex.image.value != first and ex.current == 4 and ex.class_picker.value == 1
    shown = ex.image.value
    ex.index.value = 99  # invalid: keep the image, explain, reset the box
    assert ex.image.value == shown and "out of range" in ex.status.value and ex.index.value == 4
    ex.index.value = -1
    assert ex.image.value == shown and ex.current == 4
    ex.class_picker.value = 2  # jump to the first image of class 2
    assert ex.index.value == 2 and ex.current == 2 and ex.status.value == ""
    with_heat = ex.image.value
    ex.show_heatmap.value = False
    no_heat = ex.image.value
    assert no_heat != with_heat
    ex.show_boxes.value = False
    assert ex.image.value != no_heat
    ex.show_boxes.value = True
    assert ex.image.value == no_heat  # rendering is deterministic
    assert ex.view.children[1] is ex.image  # controls column, then the image


def test_explorer_image_keeps_its_own_size_and_fits_a_laptop_screen():
    ex = widgets.explorer(_ToyData(), size=4.0)
    assert ex.image.layout.width == ex.image.layout.height == "400px"  # not stretched to the cell width
    assert ex.image.layout.object_fit == "contain"  # the PNG (about 400 px, tight bbox) is never distorted
    controls = int(ex.view.children[0].layout.width.removesuffix("px"))
    assert controls + 400 <= 1280 - 300  # beside JupyterLab's side bar at 1280 px


def test_explorer_without_heatmap_or_targets_and_static_figure():
    data = _ToyData(with_targets=False)
    ex = widgets.explorer(data)
    assert ex.show_heatmap.disabled and ex.image.value[:4] == b"\x89PNG"
    fig = widgets.explorer_static(data, heatmap_fn=lambda x, y: torch.rand(4, 4), per_class=1)
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["#0  alpha", "#1  beta", "#2  gamma"]
    ax = fig.axes[0]
    assert len([a for a in ax.get_children() if isinstance(a, AxesImage)]) == 2
    assert len([p for p in ax.patches if isinstance(p, Rectangle)]) == 1 and len(ax.get_lines()) == 1


def test_show_saves_and_displays(tmp_path, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    monkeypatch.setenv("FGIC_FIGURES", str(tmp_path))
    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    viz.show(fig, "00_demo")
    assert (tmp_path / "00_demo.png").read_bytes() == shown[0].data
    viz.show(fig)  # display only
    assert len(shown) == 2 and len(list(tmp_path.iterdir())) == 1


def test_smoke_profile_figures_carry_the_banner(monkeypatch):
    from fgic import paths

    fig = Figure()
    fig.add_subplot().plot([0, 1])
    monkeypatch.setattr(paths, "_active_profile", "default")
    assert not viz.smoke_banner(fig) and not fig.texts
    monkeypatch.setattr(paths, "_active_profile", "smoke")
    assert viz.smoke_banner(fig) and fig.texts[0].get_text().replace("\n", " ") == viz.SMOKE_BANNER
    assert not viz.smoke_banner(fig) and len(fig.texts) == 1  # drawn once


def test_savefig_stores_large_figures_with_256_colours(tmp_path):
    from PIL import Image

    from fgic.viz import fig_to_png, savefig

    fig = Figure(figsize=(8, 8))
    fig.subplots().imshow(np.random.default_rng(0).random((400, 400, 3)))  # a photo-like grid: many colours
    raw = fig_to_png(fig)
    assert len(raw) > 2**20
    big = savefig(fig, "big", tmp_path)
    assert Image.open(big).mode == "P" and big.stat().st_size < len(raw) / 2
    small = Figure(figsize=(3, 2))
    small.subplots().plot([0, 1], [1, 0])
    path = savefig(small, "line", tmp_path)
    assert Image.open(path).mode == "RGBA" and path.read_bytes() == fig_to_png(small)  # small plots stay as drawn
