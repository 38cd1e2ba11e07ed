"""Experiment grid of notebook 02: "Multi-Attention Mechanism Fusion for Fine-Grained Image Classification"
(Du, Ma), Table 1: ResNet50, FCN-, CA-, SA- and CSCA-ResNet50 on CUB-200-2011, Stanford Dogs, Stanford Cars.

``specs(S)`` builds one ``RunSpec`` per (data set, model) from the typed settings ``S``
(``fgic.settings.MultiAttention``) of ``fgic.profiles.settings("02_multi_attention", profile)``:

- smoke / default: the embedded benchmark only (``dataset="synthetic"`` with ``S.benchmark``), small
  trunks (``S.model_kw``: ``layers`` / ``width``), trained from scratch with ``S.train``.
- paper: the three real data sets of Table 1 plus the benchmark column, the full ResNet50 shape,
  ImageNet weights (``pretrained=True``: fails loudly when the weights are not cached), the
  ``multi_attention`` transform preset at 224 px and ``S.train``, trained on the whole official training
  split (``S.val_fraction = 0``; the last epoch is reported: the paper states no model selection).
  smoke / default hold out a seeded 10 % of each class as validation (our addition, never used for selection).

The "FCN-ResNet50" column is run as ``resnet50_cam_head`` (``fgic.nn.cam_attention``): a mean-pooled FCN head
equals GAP + FC, so the paper's "CAM attention" is read as CAM-weighted pooling (the top-5 classes' CAMs,
normalised, reweight the last feature map before pooling); the plain ``resnet50_fcn_head`` stays registered.

The paper gives no optimiser, learning rate, schedule, epochs, batch size or input size; the choices
(SGD, cosine, 224 px, new classifier at 10x the backbone rate) are in ``params/02_multi_attention.yaml``
and the notebook. Published numbers: ``load_numbers()`` reads ``multi_attention_numbers.yaml``.

Your own data: with ``S.data`` (``fgic.profiles.settings(..., dataset="folder", data_root=...)``) the
benchmark column trains on it instead (``fgic.profiles.data_source``); run names keep the column label.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from fgic import profiles
from fgic.cam import normalize_maps
from fgic.models.multi_attention import attention_maps
from fgic.runs import RunSpec
from fgic.settings import MultiAttention

NOTEBOOK = "02_multi_attention"
# Table 1 column label -> registered model (resnet50 = the ResNet50 baseline with the same options;
# FCN-ResNet50 = our CAM-attention reading, since a plain FCN head is the baseline's GAP + FC reordered)
MODELS = {
    "ResNet50": "resnet50",
    "FCN-ResNet50": "resnet50_cam_head",
    "CA-ResNet50": "resnet50_ca_units",
    "SA-ResNet50": "resnet50_sa_units",
    "CSCA-ResNet50": "resnet50_csca_units",
}
# Table 1 row label -> registered data set; "benchmark" is the embedded one (its own column, never the paper's)
DATASETS = {"CUB-200": "cub", "Stanford-dogs": "dogs", "Stanford-cars": "cars"}
BENCHMARK = "benchmark"


def load_numbers() -> dict:
    """The paper's published numbers (``multi_attention_numbers.yaml``)."""
    return yaml.safe_load((Path(__file__).with_name("multi_attention_numbers.yaml")).read_text())


def table1() -> pd.DataFrame:
    """Table 1 of the paper as a DataFrame: rows = data sets, columns = models, accuracy (%)."""
    acc = load_numbers()["table1"]["accuracy"]  # model -> data set -> %
    return pd.DataFrame(acc).loc[list(DATASETS), list(MODELS)]


def run_name(dataset: str, model: str, seed: int | None = None) -> str:
    """Key of one run in ``specs``: ``"<data set label>:<model label>"``, e.g. ``"benchmark:CA-ResNet50"``;
    runs with an extra training seed end in ``":s<seed>"``."""
    return f"{dataset}:{model}" + ("" if seed is None else f":s{seed}")


def _spec(S: MultiAttention, dataset: str, model: str, seed: int | None = None) -> RunSpec:
    if dataset == BENCHMARK and S.data:  # the benchmark column on your data
        data, data_kw, size = profiles.data_source(S)
    elif dataset == BENCHMARK:
        data, data_kw = "synthetic", S.benchmark.kw()
        size = S.image_size or S.benchmark.image_size
    else:
        data, data_kw, size = DATASETS[dataset], dict(S.data_kw), S.image_size
    if S.val_fraction is not None:  # paper profile: 0, the whole official training split (no validation split)
        data_kw["val_fraction"] = float(S.val_fraction)
    return RunSpec(
        model=MODELS[model],
        dataset=data,
        model_kw=dict(S.model_kw),
        data_kw=data_kw,
        transform=S.transform,
        transform_kw={"image_size": size},
        train=dict(S.train) if seed is None else {**S.train, "seed": seed},
        pretrained=S.pretrained,
    )


def specs(S: MultiAttention) -> dict[str, RunSpec]:
    """Every run of the profile: ``{run_name(data set, model): RunSpec}`` for data sets ``S.datasets``
    (labels of ``DATASETS`` or ``"benchmark"``) and models ``S.models`` (labels of ``MODELS``, all by
    default), then the benchmark runs with extra training seeds ``S.seed_runs`` ({model label: [seed, ...]},
    a yardstick for seed noise), keyed ``run_name("benchmark", model, seed)``."""
    models = S.models or list(MODELS)
    out = {run_name(d, m): _spec(S, d, m) for d in S.datasets for m in models}
    for m, seeds in S.seed_runs.items():
        for s in seeds:
            out[run_name(BENCHMARK, m, s)] = _spec(S, BENCHMARK, m, s)
    return out


def to_image(maps: torch.Tensor, size) -> torch.Tensor:
    """Min-max normalise (B, h, w) maps per image, then upsample them bilinearly to ``size``: (B, H, W) in
    [0, 1]. Normalising at the map's own resolution keeps a constant map (a 1x1 map at 32 px) at 0 instead
    of stretching rounding noise to [0, 1]; an extreme in an interior cell then peaks slightly below 1."""
    return F.interpolate(normalize_maps(maps.float())[:, None], size=tuple(size), mode="bilinear",
                         align_corners=False)[:, 0]


@torch.no_grad()
def stage_attention_map(model: nn.Module, images: torch.Tensor, stage: int) -> torch.Tensor:
    """The attention module's own spatial map (``last_map``) of the LAST block of ``layer<stage>``, for
    ``images`` (B, 3, H, W): upsampled bilinearly to the image and min-max normalised, (B, H, W) in [0, 1].

    Only SA and CSCA networks have a spatial map (CA's ``last_map`` is its channel weights (B, C, 1, 1));
    raises ``ValueError`` otherwise. The map is class-agnostic: it does not depend on a target class.
    """
    model(images)  # fills every block's last_map
    prefix = f"features.layer{stage}."
    maps = {k: v for k, v in attention_maps(model).items() if k.startswith(prefix) and v.shape[1] == 1}
    if not maps:
        raise ValueError(f"{type(model).__name__} has no spatial attention map in layer{stage}")
    last = maps[max(maps, key=lambda k: int(k.removeprefix(prefix).split(".")[0]))]  # (B, 1, h, w)
    return to_image(last[:, 0], images.shape[-2:])  # (B, H, W)


@torch.no_grad()
def class_cam(model: nn.Module, images: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
    """CAM of ``classes`` (default: the prediction) from the network's own ``model.cam(images)`` (B, K, h, w)
    (sum_k w_{c,k} A^k + b_c: the per-pixel class scores of the FCN / CAM-attention / linear heads), upsampled
    bilinearly to the image and min-max normalised: (B, H, W) in [0, 1].

    (``fgic.cam.cam`` calls ``model.cam`` with the feature map, while seed 001's networks take the images.)
    """
    maps = model.cam(images)  # (B, K, h, w)
    if classes is None:
        classes = model(images).argmax(1)  # the prediction (CAM attention: not the CAM's plain mean)
    maps = maps[torch.arange(len(maps), device=maps.device), classes]  # (B, h, w)
    return to_image(maps, images.shape[-2:])  # (B, H, W)
