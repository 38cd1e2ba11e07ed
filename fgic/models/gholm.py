"""GHOLM-Net: S. Zheng, G. Wang, "Study on Fine-grained Image Classification Based on ConvNeXt Heatmap
Localization and Contrastive Learning", Computer Science 50(10):119-125, 2023 (seed 003).

One shared backbone (a ``TimmNet`` ConvNeXt) runs three branches in a training step (section 3.1):
- Raw: the image; its Grad-CAM heatmap for the predicted class (eqs. (1)-(3));
- Crop: the box of the largest connected region of heat > mu x mean(heat) (eqs. (4)-(5), mu = 1.7),
  cut from the original image ("在原图上进行裁剪") and resized to the input size;
- Drop: the input with heat > theta x mean(heat) erased (eq. (6), theta ~ U[1, 2] per image).
Loss (eqs. (7)-(12)): CE(raw) + CE(crop) + gamma CE(drop) + SupCon(tau = 0.7) over the raw and crop views
(positives: same class in the batch). Test-time logits: raw + crop (Table 5: ``logit_mode``).

Choices where the paper is vague, and why:
- SupCon features: "the 1-D output after the backbone's fully connected layer", i.e. the logits
  (``supcon_on="logits"``), L2-normalised as in Khosla et al. (the paper has no projection head);
  ``"embedding"`` uses the pooled pre-logits features instead. SupCon is averaged over anchors
  (see ``fgic.losses.supcon``).
- Eqs. (4)-(6) threshold the raw heatmap of eq. (3) (the ReLU'ed Grad-CAM map, upsampled, not rescaled):
  ``heat_norm="none"``, the default. ``heat_norm="minmax"`` (the earlier behaviour, kept as a named option)
  min-max normalises it first, which moves the threshold to min + mu (mean - min) wherever the map's minimum
  is above 0 (an upsampled map of all-positive cells). An empty mask keeps the whole image as the crop.
- Original resolution (``input_size``): the data set delivers the augmented view at a larger size
  (``source_scale`` x the input size in ``fgic.experiments.gholm``); the model resizes it to ``input_size``
  (bilinear, antialiased) for the Raw and Drop branches and cuts the Crop branch's box out of the larger view,
  so a crop of a quarter of the image carries up to ``source_scale``^2 times more original pixels than a crop
  of the resized tensor. ``input_size=None``: the input is used as it comes (crop from the same tensor).
  Boxes are found on the heatmap at input size and scaled to the larger view.
- Erased pixels are set to ``erase_fill`` in normalised space, default 0: the normalisation mean, i.e. the
  ImageNet mean colour of ``fgic.data.transforms`` (not the data set's own mean), as WS-DAN [5] (the paper's
  source for the drop branch) does. Erasing happens on the input-size view.
- Heatmaps, boxes and masks are detached: no gradient flows through the localisation (as in WS-DAN).
- ``criterion`` of ``training_loss``: when given it is applied to each branch's ``ModelOutput`` in place
  of plain cross-entropy (so e.g. label smoothing carries over); ``None`` means plain CE.
- Ablation switches: without Crop there is no crop view (SupCon then runs on the raw view alone);
  without Crop and Drop no Grad-CAM is computed, and test-time logits are raw whatever ``logit_mode``.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn
import torch.nn.functional as F

from fgic.cam import (
    crop_resize,
    drop_mask,
    erase,
    grad_cam,
    grad_cam_from_features,
    heatmap_to_boxes,
    normalize_maps,
    relative_threshold,
)
from fgic.losses.supcon import sup_con_loss
from fgic.models.base import ModelOutput, model_outputs
from fgic.models.registry import register_model
from fgic.models.timm_net import TimmNet

LOGIT_MODES = ("raw", "crop", "both")
HEAT_NORMS = ("none", "minmax")  # eqs. (4)-(6) on the raw heatmap (paper) or on a min-max normalised one


class GHOLMNet(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        use_crop: bool = True,  # Crop branch (Table 2, exp. 2)
        use_supcon: bool = True,  # SupCon on raw + crop views (exp. 3)
        use_drop: bool = True,  # Drop branch (exp. 4)
        mu: float = 1.7,  # crop threshold factor, eq. (5), Table 4
        theta_range: tuple[float, float] = (1.0, 2.0),  # drop threshold factor range, eq. (6)
        drop_weight: float = 0.2,  # gamma of eq. (10)
        tau: float = 0.7,  # SupCon temperature, eq. (11)
        logit_mode: str = "both",  # test-time logits: raw, crop or raw + crop (Table 5)
        supcon_on: str = "logits",  # SupCon features: "logits" or "embedding"
        cam_target: str = "pred",  # Grad-CAM class in training: "pred" (paper) or "label"
        input_size: int | None = None,  # backbone input side; a larger incoming view is the crop source
        heat_norm: str = "none",  # "none": eqs. (4)-(6) on the raw heatmap; "minmax": normalised first
        erase_fill: float = 0.0,  # erased pixel value, normalised space (0 = the normalisation mean)
    ):
        super().__init__()
        if logit_mode not in LOGIT_MODES or supcon_on not in ("logits", "embedding"):
            raise ValueError(f"bad logit_mode={logit_mode!r} or supcon_on={supcon_on!r}")
        if heat_norm not in HEAT_NORMS:
            raise ValueError(f"heat_norm must be one of {HEAT_NORMS}, got {heat_norm!r}")
        if cam_target not in ("pred", "label") or not 0 < theta_range[0] <= theta_range[1]:
            raise ValueError(f"bad cam_target={cam_target!r} or theta_range={theta_range}")
        self.net = backbone
        self.use_crop, self.use_supcon, self.use_drop = use_crop, use_supcon, use_drop
        self.mu, self.theta_range, self.drop_weight, self.tau = mu, tuple(theta_range), drop_weight, tau
        self.logit_mode, self.supcon_on, self.cam_target = logit_mode, supcon_on, cam_target
        self.input_size, self.heat_norm, self.erase_fill = input_size, heat_norm, erase_fill
        self.num_classes = backbone.num_classes
        self.num_features = backbone.num_features
        self.feature_channels = backbone.feature_channels
        self.last_losses: dict[str, torch.Tensor] = {}  # the parts of the last training loss (engine: loss_<name>)

    # ---- the model protocol, delegated to the shared backbone (forward = the Raw branch)
    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's input (B, 3, s, s): ``images`` resized to ``input_size`` when they are larger."""
        s = self.input_size
        if s is None or tuple(images.shape[-2:]) == (s, s):
            return images
        return F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False, antialias=True)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(self.to_input(x))  # (B, C, h, w)

    def forward_head(self, fmap: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.net.forward_head(fmap, pre_logits=pre_logits)

    def classify(self, emb: torch.Tensor) -> torch.Tensor:
        return self.net.classify(emb)  # (B, K)

    def get_classifier(self) -> nn.Module:
        return self.net.get_classifier()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.to_input(x))  # (B, K)

    # ---- object data augmentation from a heatmap
    def sample_theta(self, n: int, device=None) -> torch.Tensor:
        lo, hi = self.theta_range
        return lo + (hi - lo) * torch.rand(n, device=device)  # theta ~ U[lo, hi], one per image

    def crop_views(
        self, images: torch.Tensor, heat: torch.Tensor, source: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop boxes (B, 4) on the heatmap's (input-size) grid and the crops (B, 3, H, W) at input size.

        The box is the largest connected region of eq. (5)'s mask; it is cut out of ``source`` (the
        original-resolution view, (B, 3, H', W')) when given, else out of ``images`` (B, 3, H, W).
        """
        h, w = heat.shape[-2:]
        boxes = heatmap_to_boxes(heat, relative_threshold(heat, self.mu))  # eqs. (4)-(5), (B, 4)
        src = images if source is None else source
        scale = torch.tensor([src.shape[-1] / w, src.shape[-2] / h] * 2, device=boxes.device)  # (4,)
        return boxes, crop_resize(src, boxes * scale, (h, w))  # (B, 4), (B, 3, H, W)

    def drop_views(self, images: torch.Tensor, heat: torch.Tensor, theta=None):
        """theta (B,), keep-masks (B, 1, H, W) (eq. (6)) and the erased images (B, 3, H, W)."""
        theta = self.sample_theta(len(images), images.device) if theta is None else theta
        mask = drop_mask(heat, theta)  # eq. (6)
        return theta, mask, erase(images, mask, self.erase_fill)

    def _heat(self, raw: ModelOutput, classes: torch.Tensor, size) -> torch.Tensor:
        """The heatmap eqs. (4)-(6) threshold (B, H, W): raw (eq. (3)) or min-max normalised (``heat_norm``)."""
        return grad_cam_from_features(raw.feature_map, raw.logits, classes, size, normalize=self.heat_norm == "minmax")

    @torch.no_grad()
    def branch_views(self, images: torch.Tensor, classes=None, theta=None) -> dict[str, torch.Tensor]:
        """Everything Fig. 6 shows for a batch: the backbone inputs, heatmaps (min-max normalised for display;
        ``heat``: the map eqs. (4)-(6) threshold), crop boxes (input-size grid), crops, drop masks, erased images."""
        x = self.to_input(images)  # (B, 3, H, W)
        heat, logits = grad_cam(self.net, x, classes, return_logits=True, normalize=self.heat_norm == "minmax")
        boxes, crops = self.crop_views(x, heat, images)
        theta, mask, erased = self.drop_views(x, heat, theta)
        classes = logits.argmax(1) if classes is None else classes
        return dict(
            inputs=x,
            heatmaps=normalize_maps(heat),
            heat=heat,
            boxes=boxes,
            crops=crops,
            masks=mask,
            erased=erased,
            theta=theta,
            classes=classes,
        )

    # ---- training and evaluation, as the engine calls them
    def _ce(self, out: ModelOutput, targets: torch.Tensor, criterion) -> torch.Tensor:
        return F.cross_entropy(out.logits, targets) if criterion is None else criterion(out, targets)

    def loss_parts(self, images, targets, criterion=None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The weighted terms of eq. (12) by name ({raw, crop, drop, supcon}) and the raw logits (B, K).

        ``images`` may be larger than ``input_size``: they are then the crop source (original resolution)."""
        x = self.to_input(images)  # (B, 3, H, W): the Raw branch's input
        raw = model_outputs(self.net, x)  # Raw branch
        parts = {"raw": self._ce(raw, targets, criterion)}  # eq. (7)
        views = [raw]
        if self.use_crop or self.use_drop:
            classes = raw.logits.argmax(1) if self.cam_target == "pred" else targets
            # Grad-CAM of the Raw forward pass; retain_graph: the loss backpropagates through it later
            heat = self._heat(raw, classes, x.shape[-2:])  # eqs. (1)-(3), (B, H, W)
            if self.use_crop:
                crop = model_outputs(self.net, self.crop_views(x, heat, images)[1])  # Crop branch
                parts["crop"] = self._ce(crop, targets, criterion)  # eq. (8)
                views.append(crop)
            if self.use_drop:
                drop = model_outputs(self.net, self.drop_views(x, heat)[2])  # Drop branch
                parts["drop"] = self.drop_weight * self._ce(drop, targets, criterion)  # eqs. (9)-(10)
        if self.use_supcon:
            z = torch.cat([v.logits if self.supcon_on == "logits" else v.embedding for v in views])  # (VB, .)
            parts["supcon"] = sup_con_loss(z, targets.repeat(len(views)), self.tau)  # eq. (11)
        return parts, raw.logits

    def training_loss(self, images, targets, criterion=None) -> tuple[torch.Tensor, torch.Tensor]:
        """eq. (12): L_total = L_raw + L_crop + gamma L_drop + L_c; returns (loss, raw logits (B, K))."""
        parts, logits = self.loss_parts(images, targets, criterion)
        self.last_losses = {k: v.detach() for k, v in parts.items()}  # no host sync: the engine averages them
        return sum(parts.values()), logits

    def predict_logits(self, images: torch.Tensor, logit_mode: str | None = None) -> torch.Tensor:
        """Test-time logits (B, K): raw, crop or raw + crop (Table 5). Works under ``torch.no_grad()``."""
        mode = (logit_mode or self.logit_mode) if self.use_crop else "raw"
        if mode not in LOGIT_MODES:
            raise ValueError(f"logit_mode must be one of {LOGIT_MODES}, got {mode!r}")
        x = self.to_input(images)  # (B, 3, H, W)
        if mode == "raw":
            return self.net(x)
        # Grad-CAM needs gradients, even here
        heat, raw = grad_cam(self.net, x, return_logits=True, normalize=self.heat_norm == "minmax")
        with torch.no_grad():
            crop = self.net(self.crop_views(x, heat, images)[1])
        return crop if mode == "crop" else raw.detach() + crop


_GHOLM_KW = set(inspect.signature(GHOLMNet.__init__).parameters) - {"self", "backbone"}


def _gholm(arch: str, num_classes: int, pretrained: bool | str, drop_rate: float, kw: dict) -> GHOLMNet:
    own = {k: kw.pop(k) for k in list(kw) if k in _GHOLM_KW}
    if arch in ("resnet18", "resnet50"):
        from fgic.models.registry import create_model

        if kw.pop("pretrained_tag", None):
            raise ValueError(
                f"gholm_{arch}: torchvision's {arch} has one ImageNet weight set, so pretrained_tag does not "
                "apply; use a ConvNeXt backbone (gholm_convnext_*) to choose timm weights by tag"
            )
        backbone = create_model(arch, num_classes, pretrained=pretrained, drop_rate=drop_rate, **kw)
    else:
        backbone = TimmNet(arch, num_classes, pretrained, drop_rate, **kw)  # kw may hold pretrained_tag
    return GHOLMNet(backbone, **own)


@register_model("gholm_resnet18", paper="003")
def gholm_resnet18(num_classes: int, pretrained: bool | str = False, drop_rate: float = 0.0, **kw):
    """GHOLM-Net on a ResNet-18 backbone (CPU profiles; ``width`` scales it).

    A departure from the paper's ConvNeXt, chosen because a from-scratch ConvNeXt does not leave chance on the
    embedded benchmark within the CPU budget while ResNet18 does; its 64 px feature map is 2 x 2, so heatmaps
    are coarse there."""
    return _gholm("resnet18", num_classes, pretrained, drop_rate, kw)


@register_model("gholm_resnet50", paper="003")
def gholm_resnet50(num_classes: int, pretrained: bool | str = False, drop_rate: float = 0.0, **kw):
    """GHOLM-Net on torchvision's ResNet-50 backbone: notebook 06's paper profile puts GHOLM on the same ResNet-50
    as every attention module (``study_resnet50`` with ``module="none"``); a departure from the paper's ConvNeXt-S."""
    return _gholm("resnet50", num_classes, pretrained, drop_rate, kw)


@register_model("gholm_convnext_atto", paper="003")
def gholm_convnext_atto(num_classes: int, pretrained: bool | str = False, drop_rate: float = 0.0, **kw):
    """GHOLM-Net on a timm ConvNeXt-Atto backbone (3.7 M parameters; CPU profiles)."""
    return _gholm("convnext_atto", num_classes, pretrained, drop_rate, kw)


@register_model("gholm_convnext_small", paper="003")
def gholm_convnext_small(num_classes: int, pretrained: bool | str = False, drop_rate: float = 0.0, **kw):
    """GHOLM-Net on a timm ConvNeXt-S backbone (the paper's).

    The paper starts from ImageNet-21k weights (ImageNet-1k for Dogs):
    ``pretrained_tag="fb_in22k"`` / ``"fb_in1k"`` (timm tags; the untagged default is ``in12k_ft_in1k``)."""
    return _gholm("convnext_small", num_classes, pretrained, drop_rate, kw)
