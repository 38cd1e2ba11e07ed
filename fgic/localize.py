"""Score heatmaps against ground-truth boxes: does attention look at the discriminative part?

For a data set with ``annotation(i)`` (the embedded benchmark gives object and part boxes, and which
parts tell a class from its nearest classes; CUB gives object boxes), every heatmap gets

- ``pointing_object`` / ``pointing_part``: its maximum lies in the object box / in any discriminative
  part box (the pointing game of Zhang et al., 2016);
- ``energy_object`` / ``energy_part``: the fraction of its mass inside the object box / inside the union
  of the discriminative part boxes;
- ``iou_object`` / ``iou_part``: the box IoU of the heatmap's box with the object box / with the best-matching
  discriminative part box. The heatmap's box is the weakly supervised localisation protocol of CAM (Zhou et al.,
  2016): the box around the largest 8-connected region above ``IOU_THRESHOLD`` (20 %) of the map's maximum
  (``fgic.cam.heatmap_to_boxes``).

``centre_prior`` is the reference every score should be read against: a Gaussian blob at the image
centre, which already scores well on data sets whose objects are centred. A method earns credit for
beating it, not for a high number alone.

Data sets without boxes (the ``cub100`` subset has no ``bounding_boxes.txt``) degrade gracefully: an image
without an object box scores NaN ("not measured"), and ``score_heatmap_fn`` warns once with
``NO_BOXES`` instead of failing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import torch

from fgic.cam import box_iou, energy_in_box, heatmap_to_boxes, pointing_game

IOU_THRESHOLD = 0.2  # of each heatmap's maximum: the box protocol of CAM (Zhou et al., 2016)
NO_BOXES = "no boxes in this data set: localisation scores are not measured (NaN)"


def _boxes_mask(boxes: Sequence[Sequence[float]], h: int, w: int) -> torch.Tensor:
    """(H, W) bool: pixel centres inside any of ``boxes`` (x0, y0, x1, y1)."""
    ys = torch.arange(h, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(w, dtype=torch.float32)[None, :] + 0.5
    mask = torch.zeros(h, w, dtype=torch.bool)
    for x0, y0, x1, y1 in boxes:
        mask |= (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
    return mask


def _scaled(box, ann: dict, h: int, w: int) -> list[float]:
    w0, h0 = ann.get("size", (w, h))
    sx, sy = w / w0, h / h0
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0 * sx, y0 * sy, x1 * sx, y1 * sy]


def localisation_scores(heatmaps: torch.Tensor, annotations: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Per-image scores (see the module docstring) for ``heatmaps`` (B, H, W) and their annotations.

    Object scores are NaN for images without an object box (e.g. the cub100 subset), part scores for
    images without discriminative part boxes (e.g. CUB).
    """
    heatmaps = heatmaps.detach().float().cpu()
    b, h, w = heatmaps.shape
    has_obj = torch.tensor([bool(a.get("object")) for a in annotations], dtype=torch.bool)  # (B,)
    obj = torch.tensor([_scaled(a["object"], a, h, w) if a.get("object") else [0.0] * 4 for a in annotations])
    nan = torch.full((b,), math.nan)
    hm_box = heatmap_to_boxes(heatmaps, IOU_THRESHOLD * heatmaps.flatten(1).amax(1))  # (B, 4), heatmap pixels
    out = {
        "pointing_object": torch.where(has_obj, pointing_game(heatmaps, obj.view(b, 4)).float(), nan),
        "energy_object": torch.where(has_obj, energy_in_box(heatmaps, obj.view(b, 4)), nan),
        "iou_object": torch.where(has_obj, box_iou(hm_box, obj.view(b, 4)), nan),
    }
    point_part, energy_part, iou_part = (torch.full((b,), float("nan")) for _ in range(3))
    for i, a in enumerate(annotations):
        parts = [_scaled(a["parts"][p], a, h, w) for p in a.get("discriminative", []) if p in a.get("parts", {})]
        if not parts:
            continue
        mask = _boxes_mask(parts, h, w)
        hm = heatmaps[i]
        point_part[i] = float(mask.flatten()[hm.flatten().argmax()])
        energy_part[i] = float((hm * mask).sum() / hm.sum().clamp_min(1e-12))
        part_boxes = torch.tensor(parts, dtype=torch.float32)  # (P, 4)
        iou_part[i] = float(box_iou(hm_box[i].expand_as(part_boxes), part_boxes).max())
    out.update(pointing_part=point_part, energy_part=energy_part, iou_part=iou_part)
    return out


def centre_prior(n: int, h: int, w: int, sigma: float = 0.25) -> torch.Tensor:
    """(n, H, W) Gaussian blobs at the image centre, std ``sigma`` x side, max 1: the reference heatmap."""
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h - 0.5
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w - 0.5
    g = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma**2))  # (H, W)
    return g.expand(n, h, w).clone()


def collect(dataset, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """Images (B, 3, H, W), labels (B,) and annotations of ``dataset[indices]``."""
    items = [dataset[i] for i in indices]
    images = torch.stack([x for x, _ in items])
    labels = torch.tensor([y for _, y in items])
    return images, labels, [dataset.annotation(i) for i in indices]


def score_heatmap_fn(
    heatmap_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    dataset,
    indices: Sequence[int],
    batch_size: int = 32,
) -> dict[str, float]:
    """Mean scores of ``heatmap_fn(images, labels) -> (B, H, W)`` over ``dataset[indices]``, with the
    centre prior's scores on the same images as ``prior_*``; NaN where the data set has no boxes (and a
    ``NO_BOXES`` warning, once)."""
    scores: dict[str, list[torch.Tensor]] = {}
    boxed = 0
    for s in range(0, len(indices), batch_size):
        images, labels, anns = collect(dataset, indices[s : s + batch_size])
        boxed += sum(bool(a.get("object")) for a in anns)
        hm = heatmap_fn(images, labels)  # (B, H, W)
        for prefix, maps in (("", hm), ("prior_", centre_prior(len(hm), *hm.shape[-2:]))):
            for k, v in localisation_scores(maps, anns).items():
                scores.setdefault(prefix + k, []).append(v)
    if boxed == 0:
        warnings.warn(f"{getattr(dataset, 'name', type(dataset).__name__)}: {NO_BOXES}", stacklevel=2)
    return {k: float(torch.cat(v).nanmean()) for k, v in scores.items()}
