"""The attention registry: every attention block of ``fgic.nn`` by name, built as ``factory(channels, **kw)``.

A new attention module is one file in ``fgic/nn/`` whose class is decorated with
``@ATTENTIONS.register("name", paper=...)`` and takes ``channels`` first; the ResNet-50 family of
``fgic.models.multi_attention`` then accepts it by name (``create_model("resnet50", attention="eca")`` puts it
in every bottleneck unit), and ``python -m fgic list attentions`` lists it. Every registered module keeps
the last map it applied in ``last_map`` (detached), which heatmap code reads.
"""

from __future__ import annotations

import importlib

from fgic.registry import Registry

_MODULES = ("attention_se", "attention_spatial", "attention_csca", "attention_mixed", "attention_eca")

ATTENTIONS = Registry("attention", loader=lambda: [importlib.import_module(f"fgic.nn.{m}") for m in _MODULES])


def create_attention(name: str, channels: int, **kw):
    """Build the registered attention ``name`` for a ``channels``-channel feature map."""
    return ATTENTIONS.get(name)(channels, **kw)


def list_attentions(pattern: str = "") -> list[str]:
    return ATTENTIONS.list(pattern)


def is_attention(module) -> bool:
    """True for an instance of a registered attention class (what ``attention_maps`` collects)."""
    ATTENTIONS.list()  # loads the modules
    return any(isinstance(module, e.factory) for e in ATTENTIONS.entries() if isinstance(e.factory, type))
