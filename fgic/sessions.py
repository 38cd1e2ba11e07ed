"""``fgic.session``: the set-up every notebook runs first, in one call.

    S, DEVICE = fgic.session("01_acanet", PROFILE, OVERRIDES, dataset=DATASET, data_root=DATA_ROOT,
                             data_file=DATA_FILE)
    S.table()

It resolves the profile (``PROFILE`` or ``$FGIC_PROFILE`` or "default") and makes it the active one (figures of a
non-default profile go to ``figures/<profile>/``), loads the typed settings (``fgic.profiles.settings``) with the
overrides of ``$FGIC_SET`` (``run-notebooks --set``) and then those of the notebook's ``OVERRIDES`` parameter
(``"epochs=1;max_steps=20"``: the same syntax; the notebook's win), seeds torch with ``S.seed``, picks the
device (CUDA when there is one) and prints one line: versions, device, profile, threads, overrides.
Empty strings for the data parameters mean "the profile's data" (papermill parameters are raw literals).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from fgic.settings import Settings


@dataclass
class Session:
    """What a notebook's set-up gives: unpack it as ``S, DEVICE = fgic.session(...)``."""

    settings: Settings  # the notebook's typed settings (fgic.settings)
    device: str  # "cuda" or "cpu"
    profile: str  # the resolved profile
    figures: Path  # where this profile's figures go (fgic.paths.figures_dir)
    overrides: dict  # the overrides applied ({key: value}; $FGIC_SET, then OVERRIDES)

    def __iter__(self):
        return iter((self.settings, self.device))


def session(
    notebook: str,
    profile: str | None = None,
    overrides: str | list[str] | dict | None = None,
    dataset: str | None = None,
    data_root: str | None = None,
    data_file: str | None = None,
    image_size: int | None = None,
) -> Session:
    """Set up ``notebook`` (its file stem, e.g. "01_acanet"): profile, settings, torch seed, device; prints one line."""
    import torch

    import fgic
    from fgic import paths, profiles

    profile = profiles.resolve_profile(profile)
    over = {**profiles.parse_overrides(os.environ.get("FGIC_SET", "")), **profiles.parse_overrides(overrides)}
    S = profiles.settings(notebook, profile, dataset=dataset or None, data_root=data_root or None,
                          data_file=data_file or None, image_size=image_size or None, overrides=over)
    torch.manual_seed(S.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    said = f" | overrides {', '.join(f'{k}={v}' for k, v in over.items())}" if over else ""
    print(f"fgic {fgic.__version__} | torch {torch.__version__} | python {platform.python_version()} | "
          f"device {device} | profile {profile} | threads {torch.get_num_threads()}{said}")
    return Session(settings=S, device=device, profile=profile, figures=paths.figures_dir(), overrides=over)
