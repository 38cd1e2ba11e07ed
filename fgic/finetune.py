"""Fine-tune from a finished run or from a weights file, with a new head for the new classes.

``RunSpec(init="run:<run id or folder>")`` (or ``init="file:<path.pt>"``, a state dict or a dict with a
``"model"`` state dict) makes ``fgic.runs.build`` call ``initialize``: every backbone weight is loaded from
the parent, the classifier (``model.get_classifier()``) keeps its fresh, seeded initialisation for the new
class count, and so does the loss (a margin-loss head, centres). When the parent was trained on exactly
the same class names, its classifier and loss head are kept too (continued training). The parent is
recorded: it is ``params.init`` of the child's record, and ``parent_record(rec)`` finds it.

Backbone weights must match in name and shape (the same ``model`` and ``model_kw``); a mismatch raises,
naming the keys. Weights from ImageNet through ``RunSpec(pretrained=True)`` already come with a new head
(``create_model`` builds the classifier for ``num_classes``).

Layer-wise learning rates (``finetune_spec``): the common fine-tuning recipe of the seed papers, a new
classifier at 10x the backbone's rate (notebook 02's ``param_groups: {"fc.": 0.1, "": 0.01}``; notebook
03 splits attention 0.1 / the rest 0.01 the same way), through ``TrainConfig.param_groups``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn


def head_prefix(model: nn.Module) -> str:
    """Module-name prefix of the model's classifier, e.g. ``"fc."`` or ``"net.fc."`` (GHOLM-Net)."""
    head = model.get_classifier()
    name = next((n for n, m in model.named_modules() if m is head), None)
    if not name:
        raise ValueError(f"{type(model).__name__}: cannot find its classifier among its modules")
    return name + "."


def parent_weights(init: str) -> tuple[dict, dict | None, list[str] | None, str]:
    """(model state, criterion state or None, class names or None, description) of an ``init`` string."""
    kind, _, ref = init.partition(":")
    if kind == "run" and ref:
        from fgic.predict import resolve_record

        rec = resolve_record(ref)
        state = torch.load(rec.dir / "final.pt", map_location="cpu", weights_only=True)
        return state["model"], state.get("criterion"), rec.get("classes"), f"run {rec.run_id}"
    if kind == "file" and ref:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"init={init!r}: no weights file {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state.get("model", state), None, None, f"file {path}"
    raise ValueError(f"init={init!r}: use 'run:<run id or folder>' or 'file:<path to a state dict>'")


def initialize(model: nn.Module, criterion: nn.Module, init: str, classes: list[str] | None = None) -> dict:
    """Load the parent's weights into ``model`` (and ``criterion`` when the classes are the same).

    Returns ``{"parent": ..., "new_head": bool, "loaded": n}``; raises naming mismatched keys.
    """
    state, crit_state, parent_classes, what = parent_weights(init)
    same_classes = parent_classes is not None and classes is not None and list(parent_classes) == list(classes)
    head = head_prefix(model)
    own = model.state_dict()
    keep = {k: v for k, v in state.items() if same_classes or not k.startswith(head)}
    missing = sorted(k for k in own if k not in keep and (same_classes or not k.startswith(head)))
    unexpected = sorted(k for k in keep if k not in own)
    wrong = sorted(k for k in keep if k in own and own[k].shape != keep[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f"init from {what}: the weights do not fit {type(model).__name__} "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatch {wrong[:5]}); "
            "use the parent's model and model_kw"
        )
    model.load_state_dict(keep, strict=False)
    if same_classes and crit_state is not None:
        criterion.load_state_dict(crit_state)
    return {"parent": what, "new_head": not same_classes, "loaded": len(keep)}


def parent_record(rec):
    """The finished parent ``Record`` of a run started with ``init="run:..."`` (None otherwise)."""
    from fgic.predict import resolve_record

    init = rec.spec.init
    return resolve_record(init.partition(":")[2]) if init.startswith("run:") else None


def finetune_spec(parent, lr: float = 0.01, head_lr: float | None = None, **changes):
    """A ``RunSpec`` that fine-tunes ``parent`` (Record, run id or folder) with layer-wise learning rates.

    The backbone trains at ``lr``, the new classifier and the loss's own parameters at ``head_lr``
    (default 10 x ``lr``). ``changes``: any RunSpec field to change (``dataset``, ``data_kw``, ``loss``, ...);
    ``train`` entries are merged over the parent's.
    """
    from fgic.predict import resolve_record

    rec = resolve_record(parent)
    spec = rec.spec
    head_lr = 10 * lr if head_lr is None else head_lr
    model = rec.load_model()
    train = {**spec.train, **changes.pop("train", {})}
    train.update(lr=head_lr, param_groups={"": lr, head_prefix(model): head_lr})  # criterion params: lr = head_lr
    return replace(spec, init=f"run:{rec.run_id}", train=train, **changes)
