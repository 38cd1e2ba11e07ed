"""Export a trained run for deployment: re-parameterised (ACCB branches fused), with its loss head.

``export(run, out, fmt)`` builds the run's ``Predictor`` (model + loss head, so margin-loss runs export the
scores they were evaluated with), fuses every re-parameterisable block (``fgic.models.reparameterize``)
and saves a program that maps a normalised (B, 3, H, W) batch at the run's input size to logits (B, K):

- ``fmt="pt2"`` (default): ``torch.export`` with a dynamic batch size; load with
  ``torch.export.load(path).module()`` (``load_exported`` does it);
- ``fmt="torchscript"``: ``torch.jit.trace``; load with ``torch.jit.load(path)`` (deprecated in torch 2.x
  but still the most widely readable format, e.g. from C++ libtorch).

No fgic is needed to run either file. Both carry ``fgic.json`` (run id, class names, input size,
normalisation mean / std) as an extra file.

Why not ONNX: it needs nothing beyond torch (ONNX export in torch 2.x wants ``onnx`` / ``onnxscript``,
checking it ``onnxruntime``), and it runs the same kernels, so the equality test is tight.
GHOLM-Net with its Crop branch is refused: its test-time crop needs Grad-CAM and connected components
(scipy), which do not trace.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from PIL import Image

from fgic.predict import Predictor


def input_size(pred: Predictor) -> tuple[int, int]:
    """(H, W) the run's evaluation transform produces (from a dummy image)."""
    from fgic.data.transforms import build_transform

    spec = pred.record.spec
    tf = build_transform(spec.transform, train=False, **spec.transform_kw)
    return tuple(tf(Image.new("RGB", (257, 243))).shape[-2:])


def fused_predictor(run, device: str = "cpu") -> Predictor:
    """The run's predictor with every re-parameterisable block fused (``model.num_reparameterized`` set)."""
    from fgic.models import reparameterize

    pred = run if isinstance(run, Predictor) else Predictor.from_record(run, device=device)
    if hasattr(pred.model, "predict_logits") and getattr(pred.model, "use_crop", False):
        raise ValueError(
            f"run {pred.record.run_id if pred.record else ''}: GHOLM-Net's test-time crop (Grad-CAM + connected "
            "components) cannot be exported; train or evaluate it in PyTorch"
        )
    reparameterize(pred.model)
    return pred.eval()


FORMATS = ("pt2", "torchscript")


def export(run, out: str | os.PathLike, fmt: str = "pt2", device: str = "cpu") -> Path:
    """Write the fused predictor of ``run`` (id, folder or Record) to ``out`` in ``fmt``; returns the path."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {FORMATS}")
    pred = fused_predictor(run, device)
    h, w = input_size(pred)
    example = torch.zeros(2, 3, h, w, device=pred.device)  # (2, 3, H, W): batch 2, so it is not fixed to 1
    spec = pred.record.spec
    from fgic.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    meta = {
        "run_id": pred.record.run_id,
        "model": spec.model,
        "loss": spec.loss,
        "classes": pred.classes,
        "input_size": [h, w],
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "fused_blocks": getattr(pred.model, "num_reparameterized", 0),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = {"fgic.json": json.dumps(meta)}
    with torch.no_grad():
        if fmt == "pt2":
            batch = torch.export.Dim("batch", min=1, max=4096)
            program = torch.export.export(pred, (example,), dynamic_shapes={"x": {0: batch}})
            torch.export.save(program, str(out), extra_files=extra)
        else:
            traced = torch.jit.trace(pred, example, check_trace=False)
            torch.jit.save(traced, str(out), _extra_files=extra)
    return out


def load_exported(path: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """(module, metadata) of an exported file of either format (pt2 files are zip archives too: try it first)."""
    extra = {"fgic.json": ""}
    try:
        module = torch.export.load(str(path), extra_files=extra).module()
    except Exception:  # not a torch.export archive: a TorchScript file
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra).eval()
    return module, json.loads(extra["fgic.json"])
