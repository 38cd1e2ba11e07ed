"""Where the workspace keeps things: the project root, ``runs/``, ``figures/`` and the data cache."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path


def is_fgic_root(folder: Path) -> bool:
    """Whether ``folder/pyproject.toml`` declares the fgic project."""
    toml = folder / "pyproject.toml"
    if not toml.is_file():
        return False
    try:
        return tomllib.loads(toml.read_text()).get("project", {}).get("name") == "fgic"
    except (OSError, tomllib.TOMLDecodeError):
        return False


def project_root(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: cwd) whose pyproject.toml declares fgic."""
    here = Path(start or Path.cwd()).resolve()
    return next((d for d in (here, *here.parents) if is_fgic_root(d)), None)


def _under_root(env: str, name: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    root = project_root()
    return (root if root else Path.cwd()) / name


def runs_dir() -> Path:
    """``$FGIC_RUNS`` or ``<project>/runs``."""
    return _under_root("FGIC_RUNS", "runs")


_active_profile: str | None = None  # set by fgic.profiles.resolve_profile


def set_active_profile(profile: str | None) -> None:
    """Remember the profile a notebook resolved, so its figures land in that profile's folder."""
    global _active_profile
    _active_profile = profile


def active_profile() -> str:
    """The profile the running notebook resolved (``fgic.profiles.resolve_profile``), else "default"."""
    return _active_profile or "default"


def figures_dir() -> Path:
    """``$FGIC_FIGURES`` or ``<project>/figures``; ``<that>/<profile>/`` for any profile but "default".

    Only the default profile writes the committed ``figures/*.png``; a smoke or paper run never
    overwrites them (``figures/smoke/``, ``figures/paper/`` are not committed).
    """
    base = _under_root("FGIC_FIGURES", "figures")
    profile = active_profile()
    return base if profile == "default" else base / profile


def cache_dir() -> Path:
    """``$FGIC_CACHE`` or ``~/.cache/fgic`` (generated data sets)."""
    return Path(os.environ.get("FGIC_CACHE") or Path.home() / ".cache" / "fgic").expanduser()
