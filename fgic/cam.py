"""Class activation maps, heatmap -> crop box / drop mask, and localisation scores.

CAM: B. Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016.
Grad-CAM: R. R. Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", IJCV 2020; written as eqs. (1)-(3) of the GHOLM-Net paper (Zheng & Wang, Computer Science
2023), whose eq. (2) drops the channel weights a_k^c (a typo: the sum is weighted, as in Grad-CAM).

Conventions (every function is batched):
- heatmaps are (B, H, W) float in [0, 1] at input size, min-max normalised per image (an all-constant map
  becomes all zeros); ``normalize=False`` returns the raw map instead (ReLU'ed, upsampled, >= 0), which is
  what GHOLM-Net's eqs. (4)-(6) threshold;
- boxes are (B, 4) float ``(x0, y0, x1, y1)`` in continuous pixel coordinates: pixel (row i, col j)
  covers [j, j + 1) x [i, i + 1), so the whole image is (0, 0, W, H). A pixel is "inside" a box when
  its centre is. ``crop_resize`` uses ``roi_align(aligned=True)`` with the same convention, so cropping
  the whole-image box at the input size returns the image unchanged.

Choices: Grad-CAM differentiates the class score (pre-softmax logit) with ``torch.autograd.grad``, so it
never touches parameter ``.grad`` and works inside a training step (the graph is kept when the logits
are returned). Summing the chosen scores over the batch gives per-image gradients as long as the head
does not mix samples (true for GAP / LayerNorm / linear heads; a BatchNorm1d head in train mode would
couple them). Connected components (8-connectivity) use ``scipy.ndimage.label`` on the CPU: the boolean
masks are copied device -> host and only the (B, 4) boxes go back.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage
from torchvision.ops import roi_align

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity for ndimage.label


def normalize_maps(maps: torch.Tensor, eps: float = 1e-12, rtol: float = 1e-5) -> torch.Tensor:
    """Per-image min-max normalisation of (B, H, W) maps to [0, 1].

    A map whose range is at rounding level (below ``rtol`` x its magnitude) carries no evidence and
    becomes all zeros, instead of rounding noise stretched to [0, 1].
    """
    flat = maps.flatten(1)  # (B, H*W)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    span = hi - lo
    flat_map = span <= torch.maximum(rtol * torch.maximum(lo.abs(), hi.abs()), torch.full_like(span, eps))
    out = (flat - lo) / span.clamp_min(eps)
    return out.masked_fill(flat_map, 0.0).view_as(maps)


def _upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # eq. (3) of the GHOLM paper: heat = upSample(gradcam), bilinear
    return F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def grad_cam_from_features(
    fmap: torch.Tensor,
    logits: torch.Tensor,
    classes: torch.Tensor,
    size: tuple[int, int],
    create_graph: bool = False,
    retain_graph: bool = True,
    normalize: bool = True,
) -> torch.Tensor:
    """Grad-CAM from a feature map (B, C, h, w) and the logits (B, K) computed from it.

    The building block behind ``grad_cam``, for callers that already ran the forward pass (GHOLM-Net).
    Returns (B, H, W) in [0, 1] (``normalize=False``: the raw upsampled map, eq. (3)), detached unless
    ``create_graph``.
    """
    score = logits.gather(1, classes.view(-1, 1).to(logits.device)).sum()  # sum_b y_b^{c_b}
    retain = retain_graph or create_graph
    (grad,) = torch.autograd.grad(score, fmap, retain_graph=retain, create_graph=create_graph)
    weights = grad.mean(dim=(2, 3), keepdim=True)  # eq. (1): a_k^c, (B, C, 1, 1)
    cam_ = F.relu((weights * fmap).sum(1))  # eq. (2): ReLU(sum_k a_k^c A^k), (B, h, w)
    heat = _upsample(cam_, size)  # eq. (3): heat = upSample(gradcam), (B, H, W)
    heat = normalize_maps(heat) if normalize else heat  # (B, H, W)
    return heat if create_graph else heat.detach()


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    classes: torch.Tensor | None = None,
    create_graph: bool = False,
    return_logits: bool = False,
    normalize: bool = True,
):
    """Grad-CAM heatmaps (B, H, W) in [0, 1] for any model following the fgic protocol.

    ``normalize=False``: the raw map (ReLU of the weighted channel sum, upsampled), not scaled to [0, 1].

    ``model`` is a network or a ``fgic.predict.Predictor``: a predictor's ``forward_head`` ends in the run's
    loss head, so for margin-loss runs the class score is the loss's logit, not the untrained ``fc``.
    ``classes`` (B,) defaults to the predicted classes. Runs with gradients enabled even inside
    ``torch.no_grad()``; the model's mode (train / eval) is left as it is. With ``return_logits`` the
    logits (B, K) of the same forward pass come back too, still attached to the graph, so a training
    step can use them without a second forward: ``heat, logits = grad_cam(m, x, return_logits=True)``.
    """
    with torch.enable_grad():
        fmap = model.forward_features(images)  # (B, C, h, w)
        if not fmap.requires_grad:  # frozen model and plain inputs: differentiate w.r.t. a leaf copy
            fmap = fmap.detach().requires_grad_(True)
        logits = model.forward_head(fmap)  # (B, K)
        if classes is None:
            classes = logits.argmax(1)
        heat = grad_cam_from_features(
            fmap,
            logits,
            classes,
            images.shape[-2:],
            create_graph=create_graph,
            retain_graph=return_logits,
            normalize=normalize,
        )
    return (heat, logits) if return_logits else heat


@torch.no_grad()
def cam(model: nn.Module, images: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
    """Class activation maps (B, H, W) in [0, 1] (Zhou et al.): sum_k w_{c,k} A^k, upsampled and normalised.

    For GAP + linear heads the weights are ``model.get_classifier().weight``. A classifier that is not of
    that form (``fgic.nn.fcn_head.FCNHead``) gives its per-class maps itself: ``classifier.cam(fmap) ->
    (B, K, h, w)``. A norm between the pool and the linear layer (timm ConvNeXt) is ignored, the usual
    approximation.
    """
    fmap = model.forward_features(images)  # (B, C, h, w)
    if classes is None:
        classes = model.forward_head(fmap).argmax(1)  # (B,)
    idx = torch.arange(len(fmap), device=fmap.device)
    head = model.get_classifier()
    if callable(getattr(head, "cam", None)):
        maps = head.cam(fmap)[idx, classes]  # (B, h, w)
    else:
        w = head.weight  # (K, C)
        if w.shape[1] != fmap.shape[1]:
            raise ValueError(
                f"CAM needs a linear classifier on the {fmap.shape[1]} feature channels, "
                f"got weight {tuple(w.shape)}; use grad_cam instead"
            )
        maps = torch.einsum("bc,bchw->bhw", w[classes], fmap)  # (B, h, w)
    return normalize_maps(_upsample(maps, images.shape[-2:]))


# ---------------------------------------------------------------- heatmap -> box / crop / drop mask


def relative_threshold(heatmaps: torch.Tensor, mu: float | torch.Tensor) -> torch.Tensor:
    """mu x mean(heatmap) per image, (B,): eq. (4) gives the mean, eqs. (5) / (6) scale it."""
    return heatmaps.flatten(1).mean(1) * mu  # eq. (4) x mu


def heatmap_to_box(heatmap: torch.Tensor, threshold: float) -> torch.Tensor:
    """Box (4,) of the largest 8-connected region of ``heatmap > threshold`` (H, W); whole image if empty."""
    return heatmap_to_boxes(heatmap[None], threshold)[0]


def heatmap_to_boxes(heatmaps: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """Batched ``heatmap_to_box``: (B, H, W) and a threshold (scalar or (B,)) -> boxes (B, 4)."""
    b, h, w = heatmaps.shape
    thr = torch.as_tensor(threshold, dtype=heatmaps.dtype, device=heatmaps.device).reshape(-1, 1, 1)
    masks = (heatmaps > thr).cpu().numpy()  # (B, H, W) bool, device -> host
    boxes = np.tile(np.array([0.0, 0.0, w, h], dtype=np.float32), (b, 1))
    for i, mask in enumerate(masks):
        labels, n = ndimage.label(mask, structure=_EIGHT)
        if n == 0:
            continue  # nothing above threshold: keep the whole image
        sizes = np.bincount(labels.ravel())[1:]
        ys, xs = np.nonzero(labels == 1 + int(sizes.argmax()))
        boxes[i] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return torch.from_numpy(boxes).to(heatmaps.device)  # (B, 4), host -> device


def crop_resize(images: torch.Tensor, boxes: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Crop each image (B, C, H, W) to its box (B, 4) and resize it bilinearly to ``size``."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    idx = torch.arange(len(images), device=images.device, dtype=images.dtype)[:, None]
    rois = torch.cat([idx, boxes.to(images)], 1)  # (B, 5): batch index, x0, y0, x1, y1
    return roi_align(images, rois, output_size=size, spatial_scale=1.0, sampling_ratio=1, aligned=True)


def drop_mask(heatmaps: torch.Tensor, theta: float | torch.Tensor) -> torch.Tensor:
    """Keep-mask (B, 1, H, W): 0 where heat > theta x mean(heat) (eq. (6) of the GHOLM paper), else 1."""
    thr = relative_threshold(heatmaps, theta).view(-1, 1, 1)  # (B, 1, 1)
    return (heatmaps <= thr).to(heatmaps.dtype)[:, None]  # eq. (6): Mask^drop = 1 is erased


def erase(images: torch.Tensor, mask: torch.Tensor, fill: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Images (B, C, H, W) with the pixels where ``mask`` (B, 1, H, W) is 0 set to ``fill``.

    ``fill``: a number or a per-channel (C,) tensor in the images' (normalised) space. The default 0 is the
    normalisation mean, i.e. the ImageNet mean colour (0.485, 0.456, 0.406) for ``fgic.data.transforms``'
    presets: not the data set's own mean.
    """
    keep = mask.to(images.dtype)  # (B, 1, H, W)
    fill = torch.as_tensor(fill, dtype=images.dtype, device=images.device)
    fill = fill.view(1, -1, 1, 1) if fill.ndim == 1 else fill  # (1, C, 1, 1) or a scalar
    return images * keep + fill * (1 - keep)  # (B, C, H, W)


# ---------------------------------------------------------------- localisation scores


def _centres_inside(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, H, W) bool: pixel centres inside each box."""
    ys = torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5
    xs = torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5
    x0, y0, x1, y1 = (boxes[:, i, None] for i in range(4))  # each (B, 1)
    in_y = (ys >= y0) & (ys <= y1)  # (B, H)
    in_x = (xs >= x0) & (xs <= x1)  # (B, W)
    return in_y[:, :, None] & in_x[:, None, :]


def pointing_game(heatmaps: torch.Tensor, boxes: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
    """(B,) bool: the heatmap's maximum (first one on ties) falls inside the box grown by ``tolerance`` px."""
    b, h, w = heatmaps.shape
    arg = heatmaps.flatten(1).argmax(1)  # (B,)
    x, y = (arg % w).to(boxes.dtype) + 0.5, (arg // w).to(boxes.dtype) + 0.5
    x0, y0, x1, y1 = boxes.unbind(1)
    t = tolerance
    return (x >= x0 - t) & (x <= x1 + t) & (y >= y0 - t) & (y <= y1 + t)


def energy_in_box(heatmaps: torch.Tensor, boxes: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(B,) fraction of the heatmap's mass whose pixel centres lie inside the box."""
    inside = _centres_inside(boxes.to(heatmaps), *heatmaps.shape[-2:])  # (B, H, W)
    total = heatmaps.flatten(1).sum(1)
    return (heatmaps * inside).flatten(1).sum(1) / total.clamp_min(eps)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) intersection over union of paired boxes a[i], b[i], each (B, 4)."""
    lt = torch.maximum(a[:, :2], b[:, :2])  # (B, 2)
    rb = torch.minimum(a[:, 2:], b[:, 2:])  # (B, 2)
    inter = (rb - lt).clamp_min(0).prod(1)
    area = lambda z: (z[:, 2:] - z[:, :2]).clamp_min(0).prod(1)
    return inter / (area(a) + area(b) - inter).clamp_min(1e-12)
