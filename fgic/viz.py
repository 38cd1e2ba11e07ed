"""Plots for the notebooks: curves, ablation bars, confusion, image grids with heatmaps and boxes, tables.

No pyplot state: every function draws on the ``ax`` it is given or on a fresh ``matplotlib.figure.Figure``
(never registered with pyplot, so nothing accumulates and nothing leaks between cells). Axes-level
functions return the ``ax``; multi-panel functions return the ``fig``. ``savefig`` is the one way a figure
is written to disk: ``figures/NAME.png`` at a fixed dpi with no software/date metadata, so saving the same
content twice gives the same bytes. The interactive explorer lives in ``fgic.widgets``.

Tables of paper vs ours (``paper_vs_ours``) take our numbers only from run records, so every number in
the ``ours`` column carries the ``run_id`` that produced it; a setting not run here says so in words, and
with ``health=True`` a run that diverged or collapsed (``fgic.health.run_health``) says "failed: <reason>".
Bar plots never draw a missing or failed run as a zero-height bar: ``absent_bar`` draws a hatched,
outlined slot over the whole height of the axes with the reason written in it ("not run", "failed: ...").
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from fgic import paths

DPI = 120  # fixed resolution of every saved figure
PALETTE_ABOVE_MB = 1.0  # figure files larger than this are stored as 256-colour PNGs (savefig)
PNG_METADATA = {"Software": None}  # matplotlib's version string would make bytes depend on the install
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NOT_RUN = "not run here (needs the real data set / GPU)"
FAILED = "failed"  # prefix of the `ours` cell of a run that diverged or collapsed (paper_vs_ours(health=True))
ABSENT_GID = "absent"  # gid of the hatched slot drawn for a bar that has no value (not run / failed)
BOX_COLORS = ("lime", "red", "yellow", "cyan", "magenta", "orange", "white")


# --------------------------------------------------------------------------------------------- saving
def figures_dir(folder: str | os.PathLike | None = None) -> Path:
    """``folder``, else ``$FGIC_FIGURES``, else ``<fgic project root>/figures``, else ``./figures``."""
    return Path(folder) if folder is not None else paths.figures_dir()


def fig_to_png(fig: Figure, dpi: int = DPI) -> bytes:
    """Render ``fig`` to PNG bytes (deterministic: fixed dpi, no metadata)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata=PNG_METADATA)
    return buf.getvalue()


def palette_png(raw: bytes, max_px: int | None = None) -> bytes:
    """PNG bytes as a palette PNG (256 colours, transparency kept), no wider than ``max_px``; the original when
    that is not smaller. A plot has far fewer colours; a grid of heatmaps reads the same at a third of the bytes."""
    from PIL import Image

    im = Image.open(io.BytesIO(raw))
    im.load()
    if max_px and max(im.size) > max_px:
        k = max_px / max(im.size)
        im = im.resize((max(1, round(im.width * k)), max(1, round(im.height * k))), Image.LANCZOS)
    im = im.convert("RGBA").quantize(256, method=Image.Quantize.FASTOCTREE)  # (H, W) palette indices
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    small = buf.getvalue()
    return small if len(small) < len(raw) else raw


def savefig(fig, name: str, folder: str | os.PathLike | None = None) -> Path:
    """Write ``fig`` (a Figure or an Axes) to ``figures/<name>.png`` atomically and return the path. A PNG over
    ``PALETTE_ABOVE_MB`` (the heatmap grids) is stored with 256 colours (``palette_png``)."""
    fig = getattr(fig, "figure", fig) if not isinstance(fig, Figure) else fig
    stem = Path(name).name.removesuffix(".png")
    if not stem or stem != name.removesuffix(".png"):
        raise ValueError(f"name must be a plain file name such as '01_acanet_table2', got {name!r}")
    out_dir = figures_dir(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.png"
    tmp = out_dir / f".{stem}.{os.getpid()}.tmp"
    try:
        png = fig_to_png(fig)
        tmp.write_bytes(palette_png(png) if len(png) > PALETTE_ABOVE_MB * 2**20 else png)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


SMOKE_BANNER = ("SMOKE PROFILE: numbers are meaningless (tiny models, 1-2 epochs, a few images); "
                "this only checks that every cell runs")


def smoke_banner(fig) -> bool:
    """Write ``SMOKE_BANNER`` across the top of ``fig`` when the active profile is "smoke" (once); True if drawn."""
    if paths.active_profile() != "smoke" or getattr(fig, "_fgic_banner", False):
        return False
    first, _, rest = SMOKE_BANNER.partition(" (")  # two short lines: no wrapping (it upsets bbox_inches="tight")
    fig.text(0.5, 1.0, f"{first}\n({rest}", ha="center", va="bottom", fontsize=7, color="white",
             bbox=dict(facecolor="firebrick", edgecolor="none", pad=3))
    fig._fgic_banner = True
    return True


def show_table(df, caption: str = ""):
    """Display a table (with ``caption`` above it; the smoke banner above that in the smoke profile)."""
    try:
        from IPython.display import Markdown, display
    except ImportError:
        return df
    lines = [f"**{SMOKE_BANNER}**"] if paths.active_profile() == "smoke" else []
    if caption:
        lines.append(caption)
    if lines:
        display(Markdown("\n\n".join(lines)))
    display(df)
    return None


def show(fig, name: str | None = None) -> None:
    """Save ``fig`` as ``figures/<name>.png`` (when named) and display it in the notebook as a PNG.

    Works with any matplotlib backend (headless runs use Agg, where a bare Figure would not render).
    In the smoke profile the figure carries ``SMOKE_BANNER`` (``smoke_banner``).
    """
    fig = getattr(fig, "figure", fig) if not isinstance(fig, Figure) else fig
    smoke_banner(fig)
    if name:
        savefig(fig, name)
    try:
        from IPython.display import Image, display

        display(Image(data=fig_to_png(fig)))
    except ImportError:  # outside IPython: saving is all there is to do
        pass


def _new_ax(ax=None, figsize=(5, 3.5)):
    if ax is not None:
        return ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


# ------------------------------------------------------------------------------------- run records
def _record(r) -> dict:
    """A run record as a dict (accepts dicts and objects with ``to_dict()`` or the same attributes)."""
    if isinstance(r, Mapping):
        return dict(r)
    if hasattr(r, "to_dict"):
        return dict(r.to_dict())
    return {k: getattr(r, k) for k in ("run_id", "name", "history", "metrics", "status") if hasattr(r, k)}


def _label(rec: dict, i: int) -> str:
    return str(rec.get("name") or rec.get("run_id") or f"run {i}")


def plot_curves(records, metric: str = "test_acc", metrics: Sequence[str] | None = None,
                labels: Sequence[str] | None = None, ax=None, title: str | None = None):
    """One line per (run, metric) of ``history[*][metric]`` against ``epoch``; returns ``ax``.

    ``records``: one run record or a list of them. ``metrics=("val_acc", "test_acc")`` draws several
    metrics per run (same colour per run, one line style per metric).
    """
    records = [records] if isinstance(records, Mapping) or hasattr(records, "history") else list(records)
    metrics = list(metrics) if metrics else [metric]
    ax = _new_ax(ax)
    styles = ("-", "--", ":", "-.")
    for i, r in enumerate(records):
        rec = _record(r)
        name = labels[i] if labels is not None else _label(rec, i)
        color = f"C{i % 10}"
        for j, m in enumerate(metrics):
            pts = [(h.get("epoch", k + 1), h[m]) for k, h in enumerate(rec.get("history", []))
                   if h.get(m) is not None]
            if not pts:
                continue
            ep, val = zip(*pts)
            lab = name if len(metrics) == 1 else f"{name} {m}"
            ax.plot(ep, val, styles[j % len(styles)], color=color, marker="o", ms=3, label=lab)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric if len(metrics) == 1 else "value")
    ax.set_title(title if title is not None else ", ".join(metrics))
    ax.grid(alpha=0.3)
    if ax.get_lines():
        ax.legend(fontsize="small")
    return ax


def _groups(data, x: str, y: str) -> dict[str, np.ndarray]:
    if isinstance(data, pd.DataFrame):
        if x in data.columns and y in data.columns:  # long form: one row per (setting, seed)
            return {str(k): g[y].to_numpy(float) for k, g in data.groupby(x, sort=False)}
        return {str(c): data[c].dropna().to_numpy(float) for c in data.columns}  # wide: one column each
    return {str(k): np.asarray(v, dtype=float).ravel() for k, v in dict(data).items()}


def absent_bar(ax, x: float, text: str, width: float = 0.65):
    """A bar slot with no value (a run not done, or failed): hatched outline over the axes' whole height
    at ``x`` (data coordinates) with ``text`` written in it, never a zero-height bar. Returns the patch
    (``gid == ABSENT_GID``)."""
    rect = Rectangle((x - width / 2, 0.0), width, 1.0, transform=ax.get_xaxis_transform(), fill=False,
                     hatch="//", edgecolor="0.6", lw=0.8, gid=ABSENT_GID)
    ax.add_patch(rect)
    ax.text(x, 0.5, text, transform=ax.get_xaxis_transform(), rotation=90, ha="center", va="center",
            fontsize=6.5, wrap=True, bbox=dict(facecolor="white", alpha=0.8, lw=0, pad=1), gid=ABSENT_GID)
    return rect


def plot_ablation(data, ax=None, x: str = "label", y: str = "value", ylabel: str = "accuracy",
                  title: str | None = None, baseline: str | None = None, failed: Mapping | None = None):
    """Bars at the mean over seeds, error bars of one standard deviation, and every seed as a dot.

    ``data``: ``{label: [value per seed]}``, a long DataFrame with columns ``x`` and ``y``, or a wide
    DataFrame with one column per label. ``baseline`` (a label) adds a dashed line at its mean.
    ``failed``: ``{label: [reason per failed seed]}``; those seeds are not in ``data`` (never averaged in)
    and are counted under the bar's tick ("n ok + k failed (reasons)"). A label with no value at all (none run, or
    all failed) is drawn as an ``absent_bar`` saying why, never as a zero-height bar.
    Returns ``ax``; the bars are ``ax.patches`` and the error bars ``ax.containers``.
    """
    groups = _groups(data, x, y)
    failed = {str(k): list(v) for k, v in (failed or {}).items() if v}
    for k in failed:
        groups.setdefault(k, np.array([]))
    ax = _new_ax(ax, figsize=(max(3.5, 0.9 * len(groups) + 1.5), 3.5))
    names = list(groups)
    means = np.array([v.mean() if v.size else np.nan for v in groups.values()])
    stds = np.array([v.std(ddof=1) if v.size > 1 else 0.0 for v in groups.values()])
    pos = np.arange(len(names))
    have = np.array([v.size > 0 for v in groups.values()], dtype=bool)
    ax.bar(pos[have], means[have], color=[f"C{i % 10}" for i in pos[have]], alpha=0.6, width=0.65)
    ax.errorbar(pos[have], means[have], yerr=stds[have], fmt="none", ecolor="black", capsize=4, lw=1.2)
    rng = np.random.default_rng(0)  # fixed jitter so re-saving the figure is byte-identical
    for i, v in enumerate(groups.values()):
        ax.scatter(i + rng.uniform(-0.15, 0.15, v.size), v, s=14, color="black", zorder=3)
    for i, name in enumerate(names):
        if not have[i]:
            why = sorted(set(failed.get(name, [])))
            absent_bar(ax, i, ("failed: " + "; ".join(why)) if why else "not run")
    if baseline is not None and np.isfinite(means[names.index(baseline)]):
        ax.axhline(means[names.index(baseline)], ls="--", color="gray", lw=1)
    if failed:  # say under every tick how many seeds count and how many failed
        names = [f"{n}\n{groups[n].size} ok + {len(failed[n])} failed ({', '.join(sorted(set(failed[n])))})"
                 if n in failed else n for n in names]
    tilt = max(map(len, names), default=0) > 8
    ax.set_xticks(pos, names, rotation=30 if tilt else 0, ha="right" if tilt else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else "mean ± std over seeds")
    return ax


def plot_confusion(confusion, classes: Sequence[str], normalize: bool = True, ax=None,
                   title: str | None = None, annot: bool | None = None):
    """Confusion matrix (rows = true class) as a heatmap; rows normalised to sum to 1 when asked."""
    cm = np.asarray(confusion, dtype=float)
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1e-12)
    k = len(classes)
    ax = _new_ax(ax, figsize=(min(2 + 0.45 * k, 12), min(1.6 + 0.45 * k, 11)))
    labels = list(classes) if k <= 40 else False
    annot = k <= 12 if annot is None else annot
    sns.heatmap(cm, ax=ax, cmap="Blues", vmin=0, vmax=1 if normalize else None, square=k <= 40,
                annot=annot, fmt=".2f" if normalize else ".0f", xticklabels=labels, yticklabels=labels,
                cbar_kws={"shrink": 0.8})
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title if title is not None else ("confusion (row-normalised)" if normalize else "confusion"))
    return ax


def plot_per_class(per_class_acc, classes: Sequence[str], ax=None, sort: bool = True,
                   title: str | None = None):
    """One bar per class (sorted worst first when ``sort``), a dashed line at the mean; returns ``ax``."""
    acc = np.asarray(per_class_acc, dtype=float)
    order = np.argsort(acc, kind="stable") if sort else np.arange(acc.size)
    ax = _new_ax(ax, figsize=(min(max(4, 0.25 * acc.size + 1), 14), 3.5))
    ax.bar(np.arange(acc.size), acc[order], color="C0")
    ax.axhline(np.nanmean(acc), ls="--", color="C3", lw=1, label=f"mean {np.nanmean(acc):.3f}")
    if acc.size <= 40:
        ax.set_xticks(np.arange(acc.size), [str(classes[i]) for i in order], rotation=90, fontsize="small")
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"{acc.size} classes, sorted" if sort else f"{acc.size} classes")
    ax.set_ylabel("accuracy")
    ax.set_title(title if title is not None else "per-class accuracy")
    ax.legend(fontsize="small")
    return ax


# ------------------------------------------------------------------------------------- image grids
def to_numpy_image(img, denormalize: bool = False, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """A (3, H, W) tensor/array, (H, W, 3) array or PIL image -> (H, W, 3) float array in [0, 1]."""
    if hasattr(img, "detach"):
        img = img.detach().float().cpu().numpy()
    a = np.asarray(img, dtype=float)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)  # (H, W, C)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    if denormalize:
        a = a * np.asarray(std) + np.asarray(mean)
    elif a.max() > 1.5:  # uint8-range input (PIL images)
        a = a / 255.0
    return np.clip(a, 0.0, 1.0)


def _as_array(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def _box_items(boxes) -> list[tuple[str | None, tuple]]:
    """Boxes of one image -> [(label or None, coords)]: dict label->box, or [(x0,y0,x1,y1[, label]), ...]."""
    if boxes is None:
        return []
    if isinstance(boxes, Mapping):
        return [(str(k), tuple(v)) for k, v in boxes.items() if v is not None]
    items = []
    for b in boxes:
        b = tuple(b.tolist() if hasattr(b, "tolist") else b)
        if len(b) in (3, 5) and isinstance(b[-1], str):
            items.append((b[-1], b[:-1]))
        else:
            items.append((None, b))
    return items


def draw_boxes(ax, boxes, colors=None, lw: float = 2.0) -> None:
    """Draw boxes (x0, y0, x1, y1) in pixel coordinates, or points (x, y) as markers, with labels."""
    for k, (label, b) in enumerate(_box_items(boxes)):
        if isinstance(colors, Mapping):
            color = colors.get(label, BOX_COLORS[k % len(BOX_COLORS)])
        else:
            palette = colors if colors else BOX_COLORS
            color = palette[k % len(palette)]
        if len(b) == 2:  # a part location given as a point
            ax.plot([b[0]], [b[1]], "o", color=color, ms=5, mec="black")
            x, y = b
        else:
            x0, y0, x1, y1 = (float(v) for v in b)
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, lw=lw))
            x, y = x0, y0
        if label:
            ax.text(x, y, label, color="black", fontsize=7, va="bottom",
                    bbox=dict(facecolor=color, alpha=0.7, pad=1, lw=0))


def show_image(ax, img, heatmap=None, boxes=None, box_colors=None, title: str | None = None,
               denormalize: bool = False, alpha: float = 0.5, cmap: str = "jet") -> None:
    """Image on ``ax``; ``heatmap`` (h, w) stretched over it with ``cmap`` at ``alpha``; then boxes."""
    a = to_numpy_image(img, denormalize)
    h, w = a.shape[:2]
    ax.imshow(a, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    if heatmap is not None:
        hm = _as_array(heatmap).squeeze()
        ax.imshow(hm, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0, interpolation="bilinear",
                  extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    draw_boxes(ax, boxes, box_colors)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize="small")


def image_grid(images, titles=None, heatmaps=None, boxes=None, box_colors=None, ncols: int = 4,
               denormalize: bool = False, alpha: float = 0.5, cmap: str = "jet", size: float = 2.2) -> Figure:
    """A grid of images, optionally with heatmap overlays and boxes; returns the ``Figure``.

    ``images``: (B, 3, H, W) tensor or a list of images. ``heatmaps``: (B, h, w), any h, w (stretched to
    the image), values in [0, 1]. ``boxes``: per image, a list of (x0, y0, x1, y1) or (x0, y0, x1, y1,
    label), or a dict label -> box, in the image's pixel coordinates. ``denormalize`` undoes the ImageNet
    mean/std normalisation.
    """
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig = Figure(figsize=(size * ncols, size * nrows + 0.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        if i >= n:
            ax.set_axis_off()
            continue
        show_image(ax, images[i], None if heatmaps is None else heatmaps[i],
                   None if boxes is None else boxes[i], box_colors,
                   None if titles is None else str(titles[i]), denormalize, alpha, cmap)
    return fig


# ------------------------------------------------------------------------------ paper vs ours tables
def paper_vs_ours(rows, metric: str = "test_top1", scale: float = 100.0, digits: int = 2,
                  health: bool = False) -> pd.DataFrame:
    """Table with the paper's number and ours side by side; ours only ever comes from a run record.

    ``rows``: dicts with ``setting`` (row label), ``paper`` (the paper's number or None) and ``run``
    (a run record, or None when the setting was not run here); optional ``metric`` per row and any extra
    columns (e.g. ``dataset``, ``source``), which are kept. Our value is ``run["metrics"][metric]`` (or the
    last ``history`` entry of that name) times ``scale``; the ``run`` column holds its ``run_id``. A row
    without a run shows ``NOT_RUN`` in ``ours``. A bare number for ``ours`` raises ``ValueError``.
    ``health=True``: a run that ``fgic.health.run_health`` calls failed (diverged, collapsed to chance,
    not finished) shows ``"failed: <reason>"`` in ``ours`` (its ``run_id`` stays in ``run``), never its number.
    """
    from fgic.health import run_health

    out = []
    for row in rows:
        row = dict(row)
        if "ours" in row:
            raise ValueError("give our result as `run` (a run record), never a bare `ours` number")
        run, m = row.pop("run", None), row.pop("metric", metric)
        setting, paper = row.pop("setting"), row.pop("paper", None)
        if run is None:
            ours, run_id = NOT_RUN, ""
        else:
            rec = _record(run)
            run_id = rec.get("run_id")
            if not run_id:
                raise ValueError(f"{setting}: the run record has no run_id")
            ok, reason = run_health(rec) if health else (True, "")
            if not ok:
                out.append({"setting": setting, "paper": np.nan if paper is None else float(paper),
                            "ours": f"{FAILED}: {reason}", "run": run_id, "metric": m, **row})
                continue
            value = (rec.get("metrics") or {}).get(m)
            if value is None:
                hist = [h[m] for h in rec.get("history") or [] if h.get(m) is not None]
                value = hist[-1] if hist else None
            if value is None:
                raise ValueError(f"{setting}: run {run_id} has no metric {m!r}")
            ours = round(float(value) * scale, digits)
        out.append({"setting": setting, "paper": np.nan if paper is None else float(paper), "ours": ours,
                    "run": run_id, "metric": m, **row})
    return pd.DataFrame(out, columns=None if out else ["setting", "paper", "ours", "run", "metric"])


def plot_bars_compare(df: pd.DataFrame, ax=None, ylabel: str = "top-1 accuracy (%)",
                      title: str | None = None):
    """Grouped bars paper vs ours for the rows of a ``paper_vs_ours`` table that have the paper's number.

    Where ours is missing (not run) or failed, its slot is an ``absent_bar`` saying so (not a zero bar)."""
    ours = pd.to_numeric(df["ours"], errors="coerce")  # NOT_RUN / failed text -> NaN
    keep = df["paper"].notna()
    sub = df[keep]
    ax = _new_ax(ax, figsize=(max(4, 1.2 * len(sub) + 1.5), 3.5))
    if not (keep & ours.notna()).any():
        ax.text(0.5, 0.5, "nothing to compare: no setting has both numbers", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    pos = np.arange(len(sub))
    ax.bar(pos - 0.2, sub["paper"].astype(float), width=0.4, label="paper", color="C7")
    have = ours[keep].notna().to_numpy()
    bars = ax.bar(pos[have] + 0.2, ours[keep][have], width=0.4, label="ours", color="C0")
    ax.bar_label(bars, labels=[str(r) for r in sub["run"][have]], fontsize=6, rotation=90, padding=2)
    for i in np.flatnonzero(~have):
        text = str(sub["ours"].iloc[i])
        absent_bar(ax, pos[i] + 0.2, "not run" if text == NOT_RUN else text, width=0.4)
    tilt = len(sub) > 3
    ax.set_xticks(pos, [str(s) for s in sub["setting"]], rotation=30 if tilt else 0,
                  ha="right" if tilt else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else "paper vs ours")
    ax.legend(fontsize="small")
    return ax
