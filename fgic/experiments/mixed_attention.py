"""Experiment grid of notebook 03: "Mixed Attention Mechanism for Small-Sample Fine-grained Image
Classification" (Li, Wu, Chang, Huang, Ma, Cao), Tables I-II, the ablation of section III-D, Figs. 2-3.

``specs(S)`` builds one ``RunSpec`` per (data set, backbone, variant, seed) from the typed settings ``S``
(``fgic.settings.MixedAttention``) of ``fgic.profiles.settings("03_mixed_attention", profile)``. Variants:
Baseline (no attention), CA (SE channel attention), SA-Ours, MA-Ours; backbones VGG16-BN and ResNet-50
(``fgic.models.mixed_attention``). The paper's recipe (section III-B) goes through ``train["param_groups"]``:
attention 0.1, the rest (backbone and the new FC-BN-ELU head) 0.01, cosine decay, batch 32, 300 epochs, 224 px,
cross-entropy.

"Small-sample" in the paper is not a sampling protocol: it names the two data sets themselves (Stanford
Cars, about 41 training images per class; FGVC-Aircraft, about 67), used with their official splits
(8,144 / 8,041 and 6,667 / 3,333). So the paper profile trains on the full official training sets
(``S.val_fraction = 0``: no validation split; the last epoch is reported, the paper states no model
selection). smoke / default hold out a seeded 10 % of each class's training images as validation (our
addition; reported, never used for selection). On the embedded benchmark a small-sample setting is a
reduced ``images_per_class`` (``S.small_sample``, ``S.small_benchmark()``), train + validation.

``feature_energy(model, images)`` is Fig. 3's heatmap: the energy of the last feature map.

Your own data: with ``S.data`` (``fgic.profiles.settings(..., dataset="folder", data_root=...)``) the
benchmark column trains on it instead, without the small-sample knobs (``fgic.profiles.data_source``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
import yaml

from fgic import profiles
from fgic.experiments.multi_attention import to_image
from fgic.runs import RunSpec
from fgic.settings import MixedAttention

NOTEBOOK = "03_mixed_attention"
BACKBONES = {"VGG16": "vgg16_bn", "ResNet-50": "resnet50"}  # the paper's column label -> model prefix
VARIANTS = {"Baseline": "top", "CA": "ca_top", "SA-Ours": "sa_top", "MA-Ours": "ma_top"}  # Table II row -> suffix
DATASETS = {"Stanford Cars-196": "cars", "FGVC-Aircraft": "aircraft"}  # Table II column -> registered name
BENCHMARK = "benchmark"


def load_numbers() -> dict:
    """The paper's published numbers (``mixed_attention_numbers.yaml``)."""
    return yaml.safe_load((Path(__file__).with_name("mixed_attention_numbers.yaml")).read_text())


def table1() -> pd.DataFrame:
    """Table I (FGVC-Aircraft, accuracy %): method, base model, accuracy, and whether it is run here."""
    return pd.DataFrame(load_numbers()["table1"]["rows"])


def table2() -> pd.DataFrame:
    """Table II (accuracy %): rows = variants, columns = (data set, backbone)."""
    acc = load_numbers()["table2"]["accuracy"]  # data set -> backbone -> variant -> %
    cols = {(d, b): acc[d][b] for d in DATASETS for b in BACKBONES}
    return pd.DataFrame(cols).loc[list(VARIANTS)]


def model_name(backbone: str, variant: str) -> str:
    """Registered model of a Table II cell, e.g. ``("VGG16", "MA-Ours")`` -> ``"vgg16_bn_ma_top"``."""
    return f"{BACKBONES[backbone]}_{VARIANTS[variant]}"


def run_name(dataset: str, backbone: str, variant: str, seed: int) -> str:
    """Key of one run in ``specs``: ``"<data set>:<backbone>:<variant>:s<seed>"``."""
    return f"{dataset}:{backbone}:{variant}:s{seed}"


def param_groups(S: MixedAttention) -> dict[str, float]:
    """Per-module learning rates: ``{"attention.": S.attention_lr, "": S.backbone_lr}`` (the paper:
    0.1 and 0.01). Every attention parameter of these networks lives under ``attention.``
    (``fgic.models.mixed_attention.paper_param_groups`` gives the same mapping from a built model)."""
    return {"attention.": float(S.attention_lr), "": float(S.backbone_lr)}


def _spec(S: MixedAttention, dataset: str, backbone: str, variant: str, seed: int) -> RunSpec:
    if dataset == BENCHMARK and S.data:  # the benchmark column on your data (no small-sample knobs)
        data, data_kw, size = profiles.data_source(S)
    elif dataset == BENCHMARK:
        data, data_kw = "synthetic", S.small_benchmark().kw()
        size = S.image_size or S.benchmark.image_size
    else:
        data, data_kw, size = DATASETS[dataset], dict(S.data_kw), S.image_size
    if S.val_fraction is not None:  # paper profile: 0, the whole official training split (no validation split)
        data_kw["val_fraction"] = float(S.val_fraction)
    train = {**S.train, "lr": float(S.backbone_lr), "param_groups": param_groups(S), "seed": seed}
    return RunSpec(
        model=model_name(backbone, variant),
        dataset=data,
        model_kw=dict(S.model_kw.get(BACKBONES[backbone]) or {}),
        data_kw=data_kw,
        transform=S.transform,
        transform_kw={"image_size": size},
        train=train,
        pretrained=S.pretrained,
    )


def specs(S: MixedAttention) -> dict[str, RunSpec]:
    """Every run of the profile, ``{run_name(...): RunSpec}``, over ``S.datasets`` (Table II column labels
    or ``"benchmark"``), ``S.backbones``, ``S.variants`` (all by default) and ``S.seeds``."""
    out = {}
    for d in S.datasets:
        for b in S.backbones or list(BACKBONES):
            for v in S.variants or list(VARIANTS):
                for s in S.seeds or [S.seed]:
                    out[run_name(d, b, v, s)] = _spec(S, d, b, v, s)
    return out


@torch.no_grad()
def feature_energy(model: nn.Module, images: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Fig. 3's heatmap: energy of the last feature map (after the attention), sum_c A_c(h, w)^2, upsampled
    bilinearly to the image (or ``size``), min-max normalised per image: (B, H, W) in [0, 1].

    The paper draws "the energy distribution of feature maps" of the highest-level feature map without a
    formula; we take the squared activations summed over channels (MA's merge conv can output negative
    values, so the plain channel sum could cancel)."""
    fmap = model.forward_features(images)  # (B, C, h, w)
    energy = fmap.float().pow(2).sum(1)  # (B, h, w)
    return to_image(energy, size or images.shape[-2:])  # (B, H, W)


@torch.no_grad()
def spatial_attention_map(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The attention module's own spatial map V (``model.attention.last_map``, SA-Ours and MA-Ours: the SA
    branch's softmax-weighted channel sum, eq. (3)), upsampled bilinearly to the image and min-max
    normalised: (B, H, W) in [0, 1]. Raises ``ValueError`` for Baseline and CA (no spatial map)."""
    model(images)  # fills last_map
    v = getattr(model.attention, "last_map", None)
    if v is None or v.shape[1] != 1:
        raise ValueError(f"{type(model.attention).__name__} has no spatial attention map")
    return to_image(v[:, 0], images.shape[-2:])  # (B, H, W)
