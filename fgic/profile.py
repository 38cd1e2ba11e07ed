"""Deprecated: model cost (parameters, FLOPs, latency) moved to ``fgic.cost``; this shim re-exports it.

``fgic.profile`` was easy to confuse with ``fgic.profiles`` (the notebook settings). Importing it warns with a
``DeprecationWarning``; use ``from fgic.cost import complexity, inference_time, params``.
"""

import warnings

from fgic import cost as _cost

globals().update({k: v for k, v in vars(_cost).items() if not k.startswith("__")})  # everything, private too
__all__ = list(_cost.__all__)

warnings.warn("fgic.profile is deprecated; use fgic.cost (same functions)", DeprecationWarning, stacklevel=2)
