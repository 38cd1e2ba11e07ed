"""fgic: a notebook-based study workspace for fine-grained image classification with attention."""

__version__ = "0.1.0"
