"""fgic: a notebook-based study workspace for fine-grained image classification with attention."""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "predict":  # ``fgic.predict(run, images)``: the callable module, imported on first use
        import importlib

        return importlib.import_module("fgic.predict")
    if name in ("session", "Session"):  # ``S, DEVICE = fgic.session(notebook, PROFILE, OVERRIDES, ...)``
        from fgic import sessions

        return getattr(sessions, name)
    raise AttributeError(f"module 'fgic' has no attribute {name!r}")
