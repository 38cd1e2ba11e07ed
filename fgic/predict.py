"""The one object that predicts for any trained run: ``Predictor`` = model + loss head, in eval mode.

Runs trained with a margin loss (CosFace, A-softmax, COCO, LGM, ...) keep their classifier in the loss:
the model's own ``fc`` stays at its random initialisation, so ``rec.load_model()(x)`` is meaningless for
them. A ``Predictor`` gives the scores the engine evaluated when the run was trained:

- ``logits(x)`` (and ``forward(x)``): ``model.predict_logits(x)`` when the model defines it (GHOLM-Net:
  raw + crop), else ``criterion.logits(model_outputs(model, x))``, exactly as ``fgic.engine.TrainModule``;
- ``embed(x)``: the pooled embedding (B, D);
- ``forward_features`` / ``forward_head``: the model protocol with the loss head, so
  ``fgic.cam.grad_cam(predictor, images)`` differentiates the class score the run was trained on
  (for GHOLM-Net: the raw branch, as GHOLM's own Grad-CAM);
- ``predict_proba``, ``topk`` and ``accuracy(dataset)`` for tables and the command line.

``predict(run, images, k=5, cam_dir=None)`` is the batch entry behind ``python -m fgic predict``. The
module itself is callable, so ``import fgic; fgic.predict(run, images)`` is the same call.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import types
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from fgic.models.base import ModelOutput, predict_logits

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class Predictor(nn.Module):
    """Model + loss head of one run, in eval mode. ``classes``: class names in label order (optional)."""

    def __init__(self, model: nn.Module, criterion: nn.Module | None = None, classes: list[str] | None = None):
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.classes = list(classes) if classes is not None else None
        self.record = None  # set by from_record
        self.eval()

    # ---- construction
    @classmethod
    def from_record(cls, run, device: str | torch.device = "cpu", group: str | None = None) -> Predictor:
        """From a ``Record``, a run id (searched under ``runs/``) or a run folder / its record.json."""
        rec = resolve_record(run, group)
        model = rec.load_model(map_location="cpu")
        criterion = rec.load_criterion()
        pred = cls(model, criterion, rec.get("classes"))
        pred.record = rec
        return pred.to(device).eval()

    @property
    def net(self) -> nn.Module:
        """The network whose feature map Grad-CAM reads (GHOLM-Net's shared backbone, else the model)."""
        return self.model.net if hasattr(self.model, "predict_logits") and hasattr(self.model, "net") else self.model

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- scores
    def _head(self, out: ModelOutput) -> torch.Tensor:
        return out.logits if self.criterion is None else self.criterion.logits(out)  # (B, K)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (B, K) as the engine evaluated them."""
        return predict_logits(self.model, self.criterion, x)  # (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)  # (B, K)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled embedding (B, D) (of GHOLM-Net's backbone on the raw image)."""
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)  # (B, D)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(1)  # (B, K)

    def topk(self, x: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities (B, k), class indices (B, k)), best first."""
        return self.predict_proba(x).topk(min(k, self.num_classes), dim=1)

    # ---- the model protocol with the loss head (what fgic.cam.grad_cam calls)
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)  # (B, C, h, w)

    def forward_head(self, fmap: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        emb = self.net.forward_head(fmap, pre_logits=True)  # (B, D)
        if pre_logits:
            return emb
        return self._head(ModelOutput(fmap, emb, self.net.classify(emb)))  # (B, K)

    def grad_cam(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Grad-CAM heatmaps (B, H, W) in [0, 1] of the class scores this predictor gives."""
        from fgic.cam import grad_cam

        return grad_cam(self, images, classes)

    @torch.no_grad()
    def accuracy(self, dataset: Dataset, batch_size: int = 64, progress: bool = False) -> float:
        """Top-1 over ``dataset`` (items ``(image, label)``)."""
        hits = seen = 0
        for x, y in tqdm(DataLoader(dataset, batch_size), desc="evaluate", disable=not progress, leave=False):
            pred = self.logits(x.to(self.device)).argmax(1).cpu()  # (B,)
            hits += int((pred == y).sum())
            seen += len(y)
        return hits / max(seen, 1)


# ----------------------------------------------------------------------------- finding runs


def resolve_record(run, group: str | None = None):
    """A finished ``Record`` from a Record, a run folder, a record.json path or a run id under ``runs/``."""
    from fgic.runs import Record

    if isinstance(run, Record):
        rec = run
    else:
        path = Path(run)
        if path.name == "record.json":
            path = path.parent
        if not (path / "record.json").is_file():
            path = _find_run_dir(str(run), group)
        rec = Record(json.loads((path / "record.json").read_text()))
        rec["dir"] = str(path)
    if rec.get("status") != "finished":
        raise FileNotFoundError(f"run {rec.get('run_id')} in {rec.get('dir')} is {rec.get('status')!r}, not finished")
    if not (Path(rec["dir"]) / "final.pt").is_file():
        raise FileNotFoundError(f"run {rec.get('run_id')}: no checkpoint {Path(rec['dir']) / 'final.pt'}")
    return rec


def _find_run_dir(run_id: str, group: str | None) -> Path:
    from fgic.paths import runs_dir

    root = runs_dir()
    hits = sorted(root.glob(f"{group or '*'}/{run_id}/record.json"))
    if not hits:
        raise FileNotFoundError(
            f"no run {run_id!r}: neither a run folder nor a run id under {root} (set FGIC_RUNS or pass the folder)"
        )
    if len(hits) > 1:
        groups = [h.parent.parent.name for h in hits]
        raise ValueError(f"run id {run_id!r} is in several groups {groups}; pass group= or the run folder")
    return hits[0].parent


# ----------------------------------------------------------------------------- batch prediction


def list_images(paths) -> list[Path]:
    """Image files from files and folders (folders searched recursively, sorted)."""
    out = []
    for p in map(Path, [paths] if isinstance(paths, (str, os.PathLike)) else paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such image or folder: {p}")
    return out


class _Images(Dataset):
    def __init__(self, paths: list[Path], transform):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import UnidentifiedImageError

        from fgic.data import load_rgb

        try:
            return self.transform(load_rgb(self.paths[i]))  # (3, H, W)
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"{self.paths[i]} is not a readable image: {e}") from e


def predict(
    run,
    images,
    k: int = 5,
    cam_dir: str | os.PathLike | None = None,
    csv_path: str | os.PathLike | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = True,
):
    """Top-``k`` classes with probabilities for ``images`` (files and / or folders) under ``run``.

    Returns a DataFrame with one row per image: ``path``, ``top1`` .. ``top<k>`` (class names) and
    ``p1`` .. ``p<k>``. ``cam_dir``: write a Grad-CAM overlay of the top class per image there (PNG).
    ``csv_path``: also write the table as CSV. Images get the run's evaluation transform.
    """
    import pandas as pd

    from fgic.data.transforms import build_transform

    pred = run if isinstance(run, Predictor) else Predictor.from_record(run, device=device)
    spec = pred.record.spec
    tf = build_transform(spec.transform, train=False, **spec.transform_kw)
    paths = list_images(images)
    if not paths:
        raise FileNotFoundError(f"no images found in {images}")
    names = pred.classes or [str(i) for i in range(pred.num_classes)]
    rows = []
    loader = DataLoader(_Images(paths, tf), batch_size)
    done = 0
    for x in tqdm(loader, desc="predict", disable=not progress or os.environ.get("TQDM_DISABLE") == "1"):
        x = x.to(pred.device)  # (B, 3, H, W)
        with torch.no_grad():
            prob, idx = pred.topk(x, k)  # (B, k), (B, k)
        batch_paths = paths[done : done + len(x)]
        if cam_dir is not None:
            heat = pred.grad_cam(x, idx[:, 0])  # (B, H, W)
            _write_overlays(batch_paths, heat.cpu(), Path(cam_dir), start=done)
        for p, pr, ix in zip(batch_paths, prob.tolist(), idx.tolist()):
            row = {"path": str(p)}
            row.update({f"top{j + 1}": names[c] for j, c in enumerate(ix)})
            row.update({f"p{j + 1}": round(v, 6) for j, v in enumerate(pr)})
            rows.append(row)
        done += len(x)
    df = pd.DataFrame(rows)
    if csv_path is not None:
        Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(csv_path, index=False, quoting=csv.QUOTE_MINIMAL)
    return df


def _write_overlays(paths: list[Path], heat: torch.Tensor, out: Path, start: int = 0) -> None:
    """Each original image with its heatmap (jet, alpha 0.5) on it, as ``out/<index>_<stem>_cam.png``."""
    import matplotlib
    import numpy as np
    from PIL import Image

    from fgic.data import load_rgb

    out.mkdir(parents=True, exist_ok=True)
    cmap = matplotlib.colormaps["jet"]
    for i, (p, h) in enumerate(zip(paths, heat), start):
        img = load_rgb(p)
        h_img = Image.fromarray((h.numpy() * 255).astype(np.uint8)).resize(img.size, Image.BILINEAR)
        color = (cmap(np.asarray(h_img) / 255.0)[..., :3] * 255).astype(np.uint8)  # (H, W, 3)
        blend = (0.5 * np.asarray(img, dtype=np.float32) + 0.5 * color).astype(np.uint8)
        Image.fromarray(blend).save(out / f"{i:05d}_{p.stem}_cam.png")


class _CallableModule(types.ModuleType):
    """``fgic.predict(...)`` calls ``fgic.predict.predict(...)``."""

    def __call__(self, *args, **kw):
        return predict(*args, **kw)


sys.modules[__name__].__class__ = _CallableModule
