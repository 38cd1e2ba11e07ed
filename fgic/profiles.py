"""Profiles: ``smoke`` (seconds per notebook, CI and nbval), ``default`` (the main job on the embedded
benchmark, all notebooks within about 30 min on a 2-core CPU) and ``paper`` (real data, the paper's
hyper-parameters, a GPU).

Settings live in ``params/``: ``profiles.yaml`` holds what every notebook of a profile shares (the
benchmark's knobs, image size), ``<notebook>.yaml`` what one notebook needs, each keyed by profile.
``settings("01_acanet", "smoke")`` merges the two (the notebook's keys win).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from fgic.paths import project_root

PROFILES = ("smoke", "default", "paper")


def params_dir() -> Path:
    root = project_root() or project_root(Path(__file__).parent)
    if root is None or not (root / "params").is_dir():
        raise FileNotFoundError("cannot find the params/ folder of the fgic project (run from inside the checkout)")
    return root / "params"


def resolve_profile(profile: str | None) -> str:
    """``profile`` or ``$FGIC_PROFILE`` or "default"; raises on an unknown name."""
    profile = profile or os.environ.get("FGIC_PROFILE") or "default"
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: use one of {PROFILES}")
    return profile


def _load(path: Path, profile: str) -> dict:
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return dict(data.get(profile) or {})


def settings(notebook: str, profile: str | None = None) -> dict:
    """Merged settings of ``notebook`` (file stem, e.g. "01_acanet") under ``profile``."""
    profile = resolve_profile(profile)
    d = params_dir()
    out = _load(d / "profiles.yaml", profile)
    for k, v in _load(d / f"{notebook}.yaml", profile).items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    out["profile"] = profile
    return out
