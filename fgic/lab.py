"""``python -m fgic lab``: JupyterLab on the notebooks, with the workspace's defaults.

One default differs from JupyterLab's own: **widget state is saved with the notebook**
(``@jupyter-widgets/jupyterlab-manager`` ``saveState``), so a saved notebook reopened later, when the
kernel that held the widgets is gone, shows the explorer's last image instead of "Error displaying
widget: model not found". The defaults live in ``fgic/jupyter/overrides.json`` and reach JupyterLab as
its application settings folder; a user's own settings still win. With plain ``jupyter lab`` the same
behaviour is one switch: Settings > Widgets > "Save Widget State Automatically".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SETTINGS_DIR = Path(__file__).parent / "jupyter"  # holds overrides.json


def lab_command(args: list[str] | None = None) -> list[str]:
    """The ``jupyter lab`` command line with the workspace's settings folder and ``args`` appended."""
    return [sys.executable, "-m", "jupyter", "lab", f"--LabApp.app_settings_dir={SETTINGS_DIR}", *(args or [])]


def main(args: list[str] | None = None) -> int:
    from fgic.notebooks import notebooks_dir

    extra = list(args or [])
    if not any(a.startswith("--ServerApp.root_dir") or not a.startswith("-") for a in extra):
        extra.append(str(notebooks_dir()))
    return subprocess.call(lab_command(extra))
