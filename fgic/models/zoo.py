"""Imports every model module in ``fgic.models`` so their ``@register_model`` decorators run."""

import importlib
import pkgutil

import fgic.models as _pkg

_INFRA = {"base", "registry", "reparam", "zoo", "pretrained"}

for _m in pkgutil.iter_modules(_pkg.__path__):
    if _m.name not in _INFRA:
        importlib.import_module(f"fgic.models.{_m.name}")
