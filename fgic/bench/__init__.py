"""Benchmarks: ``python -m fgic bench NAME [--device cpu|cuda]``.

Each module here defines ``main(device="cpu", tiny=False) -> dict`` that prints its figures (ratios by
name) and returns them; ``tiny`` runs it at a toy size (for tests: it runs and names its ratios, the
figures mean nothing). Speed targets live here, never in timed unit tests.
"""

from __future__ import annotations

import importlib
import pkgutil


def list_benchmarks() -> list[str]:
    import fgic.bench as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def run_benchmark(name: str, device: str = "cpu", tiny: bool = False, **kw) -> dict:
    """Run ``fgic.bench.<name>.main(device, tiny, **kw)``; ``kw``: that benchmark's own options."""
    if name not in list_benchmarks():
        raise KeyError(f"unknown benchmark {name!r}; available: {list_benchmarks()}")
    return importlib.import_module(f"fgic.bench.{name}").main(device=device, tiny=tiny, **kw)
