"""An ipywidgets explorer for a data set: pick a class or an image, see it with its heatmap and GT boxes.

Built from ``ipywidgets.Image`` showing a matplotlib ``Figure`` rendered to PNG bytes, so it needs no
inline backend, and its callbacks can be tested in plain pytest by setting ``.value`` on the widgets.
``explorer_static`` draws the same content as one figure, for headless runs and GitHub.

The data set needs ``__getitem__(i) -> (image, label)`` and ``classes``; ``annotation(i) ->
{"object": box, "parts": {name: box or point}}`` is optional. Choice: annotations may be in original-image
pixels when they also carry ``"size": (W, H)`` (as ``ImageListDataset`` does); they are then scaled to the
image tensor's size, which is exact for a plain resize and approximate after a crop. Without ``"size"``
they are taken to be in the tensor's pixel coordinates. ``heatmap_fn(images (1, 3, H, W), labels (1,))``
returns a (1, h, w) or (h, w) map in [0, 1], e.g. ``lambda x, y: fgic.cam.grad_cam(model, x, y)``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence

import ipywidgets as W
import numpy as np
import torch
from matplotlib.figure import Figure

from fgic.viz import fig_to_png, image_grid, show_image, to_numpy_image

OBJECT_COLOR = "lime"
TITLE_CHARS = 26  # a panel title wraps at this many characters, so neighbours never overlap
IMAGE_DPI = 100  # the explorer's image: size (inches) x 100 px on each side


def _labels(dataset) -> list[int]:
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return [int(t) for t in targets]
    return [int(dataset[i][1]) for i in range(len(dataset))]  # small data sets only: loads every image


def example_boxes(dataset, i: int, image_hw: tuple[int, int]) -> dict:
    """``dataset.annotation(i)`` flattened to {label: box or point} in the image's pixel coordinates."""
    ann = dataset.annotation(i) if hasattr(dataset, "annotation") else {}
    ann = dict(ann or {})
    sx = sy = 1.0
    if ann.get("size") is not None:
        w0, h0 = ann["size"]
        sy, sx = image_hw[0] / h0, image_hw[1] / w0
    out = {}
    items = [("object", ann.get("object"))] + list((ann.get("parts") or {}).items())
    for name, b in items:
        if b is None:
            continue
        b = [float(v) for v in (b.tolist() if hasattr(b, "tolist") else b)]
        out[name] = tuple(v * (sx if k % 2 == 0 else sy) for k, v in enumerate(b))
    return out


def _heatmap(heatmap_fn, img, label: int):
    x = img if torch.is_tensor(img) else torch.as_tensor(to_numpy_image(img)).permute(2, 0, 1).float()
    hm = heatmap_fn(x.unsqueeze(0), torch.tensor([label]))  # (1, h, w) or (h, w)
    hm = hm.detach().cpu().numpy() if torch.is_tensor(hm) else np.asarray(hm)
    return hm.reshape(hm.shape[-2:])


def _hw(img) -> tuple[int, int]:
    return to_numpy_image(img).shape[:2]


class Explorer:
    """Widgets: class dropdown, image index, heatmap and boxes toggles; ``image`` shows the rendering.

    Layout: the controls in a 280 px column left of the image, which is shown at its own pixel size
    (``size`` inches x 100 dpi, 400 px by default), so the explorer fits a 1280x800 window.

    ``view`` is the assembled widget to display. Picking a class jumps to its first image; typing an
    index moves to that image and updates the class. An invalid index keeps the current image and
    explains why in ``status``.
    """

    def __init__(self, dataset, heatmap_fn: Callable | None = None, denormalize: bool = True,
                 alpha: float = 0.5, size: float = 4.0):
        self.dataset, self.heatmap_fn = dataset, heatmap_fn
        self.denormalize, self.alpha, self.size = denormalize, alpha, size
        self.labels = _labels(dataset)
        self.current = 0
        self._busy = False
        classes = list(dataset.classes)
        self.class_picker = W.Dropdown(
            options=[(f"{k}: {c}", k) for k, c in enumerate(classes)],
            value=self.labels[0] if self.labels else None,
            description="class",
            layout=W.Layout(width="270px"),
            style={"description_width": "60px"},
        )
        self.index = W.IntText(
            value=0, description="image #", layout=W.Layout(width="270px"), style={"description_width": "60px"}
        )
        self.show_heatmap = W.Checkbox(value=heatmap_fn is not None, description="heatmap",
                                       disabled=heatmap_fn is None)
        self.show_boxes = W.Checkbox(value=True, description="boxes")
        px = f"{round(size * IMAGE_DPI)}px"  # the PNG's own size: never stretched to the cell's width
        self.image = W.Image(format="png", layout=W.Layout(width=px, height=px, object_fit="contain"))
        self.status = W.HTML(layout=W.Layout(width="260px"))
        self.class_picker.observe(self._on_class, names="value")
        self.index.observe(self._on_index, names="value")
        self.show_heatmap.observe(lambda _: self.refresh(), names="value")
        self.show_boxes.observe(lambda _: self.refresh(), names="value")
        controls = W.VBox(  # a column of controls left of the image: the whole explorer fits 1280x800
            [self.class_picker, self.index, self.show_heatmap, self.show_boxes, self.status],
            layout=W.Layout(width="280px"),
        )
        self.view = W.HBox([controls, self.image], layout=W.Layout(align_items="flex-start"))
        if self.labels:
            self.refresh()

    def render(self, i: int):
        """The figure for image ``i`` with the current toggles (also used by ``explorer_static``)."""
        img, label = self.dataset[i]
        hm = _heatmap(self.heatmap_fn, img, label) if self.show_heatmap.value and self.heatmap_fn else None
        boxes = example_boxes(self.dataset, i, _hw(img)) if self.show_boxes.value else None
        fig = Figure(figsize=(self.size, self.size), dpi=IMAGE_DPI, layout="constrained")
        ax = fig.add_subplot()
        colors = {"object": OBJECT_COLOR}
        show_image(ax, img, hm, boxes, colors, f"#{i}  {self.dataset.classes[label]}", self.denormalize,
                   self.alpha)
        return fig

    def refresh(self) -> None:
        self.image.value = fig_to_png(self.render(self.current), dpi=IMAGE_DPI)

    def _on_index(self, change) -> None:
        if self._busy:
            return
        i = change["new"]
        valid = 0 <= i < len(self.labels)
        if valid:
            self.current = i
        self._busy = True
        try:  # keep the widgets in step without re-entering the callbacks
            self.index.value = self.current
            self.class_picker.value = self.labels[self.current]
        finally:
            self._busy = False
        if not valid:
            last = len(self.labels) - 1
            self.status.value = f"<b>index {i} is out of range</b> (0 to {last}); showing #{self.current}"
            return
        self.status.value = ""
        self.refresh()

    def _on_class(self, change) -> None:
        if self._busy:
            return
        first = next((i for i, y in enumerate(self.labels) if y == change["new"]), None)
        if first is None:
            self.status.value = f"no image of class {change['new']} in this split"
            return
        if first == self.index.value:  # no change event would fire
            self.current = first
            self.status.value = ""
            self.refresh()
        else:
            self.index.value = first  # triggers _on_index, which refreshes


def explorer(dataset, heatmap_fn: Callable | None = None, **kw) -> Explorer:
    """Build an ``Explorer``; display ``explorer(...).view`` in a notebook."""
    return Explorer(dataset, heatmap_fn, **kw)


def explorer_static(dataset, heatmap_fn: Callable | None = None, indices: Sequence[int] | None = None,
                    per_class: int = 1, max_images: int = 8, ncols: int = 4, denormalize: bool = True,
                    alpha: float = 0.5):
    """The explorer's content as one figure: the first ``per_class`` image(s) of each class (or
    ``indices``), each with its heatmap and boxes; at most ``max_images`` panels. Returns the Figure."""
    if indices is None:
        seen: dict[int, int] = {}
        indices = []
        for i, y in enumerate(_labels(dataset)):
            if seen.get(y, 0) < per_class:
                seen[y] = seen.get(y, 0) + 1
                indices.append(i)
    indices = list(indices)[:max_images]
    images, titles, heatmaps, boxes = [], [], [], []
    for i in indices:
        img, label = dataset[i]
        images.append(img)
        titles.append(textwrap.fill(f"#{i}  {dataset.classes[label]}", TITLE_CHARS))  # long names wrap
        heatmaps.append(_heatmap(heatmap_fn, img, label) if heatmap_fn else None)
        boxes.append(example_boxes(dataset, i, _hw(img)))
    return image_grid(images, titles, heatmaps, boxes, {"object": OBJECT_COLOR}, ncols=ncols,
                      denormalize=denormalize, alpha=alpha)
