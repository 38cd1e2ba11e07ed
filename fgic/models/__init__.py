"""Assembled networks behind one string registry: ``create_model("acanet18", num_classes=200)``."""

from fgic.models.base import ClassifierNet, ModelOutput, model_outputs
from fgic.models.registry import create_model, list_models, register_model
from fgic.models.reparam import reparameterize

__all__ = [
    "ClassifierNet",
    "ModelOutput",
    "create_model",
    "list_models",
    "model_outputs",
    "register_model",
    "reparameterize",
]
