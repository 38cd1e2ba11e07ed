"""Test-session environment: the smoke profile (also for the nbval kernels), quiet progress, Agg plots."""

import os
import tempfile

os.environ.setdefault("FGIC_PROFILE", "smoke")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="fgic-mpl-"))
os.environ.setdefault("FGIC_RUNS", tempfile.mkdtemp(prefix="fgic-runs-"))  # tests never touch ./runs
os.environ.setdefault("FGIC_FIGURES", tempfile.mkdtemp(prefix="fgic-figures-"))  # nor ./figures
os.environ.setdefault("FGIC_ALLOW_DOWNLOAD", "0")  # no test waits on the network
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm asks the Hub at once instead of retrying

collect_ignore_glob = ["notebooks/_out/*", ".dev/*"]
