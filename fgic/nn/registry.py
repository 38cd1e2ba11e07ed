"""The attention registry: every attention block of ``fgic.nn`` by name, built as ``factory(channels, **kw)``.

A new attention module is one file ``fgic/nn/attention_<name>.py`` (found by its name) whose class is
decorated with ``@ATTENTIONS.register("name", paper=...)`` and takes ``channels`` first; the ResNet-50 family of
``fgic.models.multi_attention`` then accepts it by name (``create_model("resnet50", attention="eca")`` puts it
in every bottleneck unit), and ``python -m fgic list attentions`` lists it. Every registered module keeps
the last map it applied in ``last_map`` (detached), which heatmap code reads.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from fgic.registry import Registry


def _load_attention_files() -> None:
    """Import every ``fgic/nn/attention_*.py``: their decorators fill the registry (a new file is found as is)."""
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("attention_"):
            importlib.import_module(f"fgic.nn.{info.name}")


ATTENTIONS = Registry("attention", loader=_load_attention_files)


def create_attention(name: str, channels: int, **kw):
    """Build the registered attention ``name`` for a ``channels``-channel feature map."""
    return ATTENTIONS.get(name)(channels, **kw)


def list_attentions(pattern: str = "") -> list[str]:
    return ATTENTIONS.list(pattern)


def is_attention(module) -> bool:
    """True for an instance of a registered attention class (what ``attention_maps`` collects)."""
    ATTENTIONS.list()  # loads the modules
    return any(isinstance(module, e.factory) for e in ATTENTIONS.entries() if isinstance(e.factory, type))
