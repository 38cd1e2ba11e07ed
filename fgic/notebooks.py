"""Execute the numbered notebooks headlessly with papermill (``python -m fgic run-notebooks``).

Each notebook runs in its own folder as working directory with ``PROFILE`` injected, a quiet tqdm and
the Agg backend; the executed copy goes to ``notebooks/_out/<name>.<profile>.ipynb`` (not committed),
the figures to ``figures/`` (default profile) or ``figures/<profile>/`` (smoke, paper; not committed).
A failing notebook does not stop the others; the summary says which failed and the command exits non-zero.

**One queue for all runs** (``pretrain``): before the first notebook starts, the runs of every selected notebook's
grid (``fgic.reproduce.EXPERIMENTS``) train in one ``train_many`` call, the notebooks with the longest runs first
(one timed step each). The notebooks then find their records and reuse them. Run one notebook after the other,
each grid's last runs left a core idle; one queue keeps both busy to the end. The records are the same either way
(every run is seeded and pins its threads).

**Two notebooks at a time** (``notebook_jobs``): after the queue, each notebook mostly evaluates and draws on one
thread, so on a CPU-only machine the smoke and default profiles execute two at a time (the biggest grids first),
each kernel pinned to half the cores (``OMP_NUM_THREADS``, unless set). Timings a notebook measures (notebook 06's
cost table) then share the machine with the other notebook, as its training runs shared it with the other run.

**Published results**: a default-profile run without overrides also writes each executed notebook that
passed to ``results/<name>.ipynb`` (committed: what a reader who runs nothing sees, with every table,
figure and conclusion, on GitHub or in JupyterLab; run-time metadata and widget state dropped).
Figures are stored as 256-colour PNGs at most ``MAX_FIGURE_PX`` wide (``shrink_png``: a plot has far fewer
colours, so it reads the same at a third of the bytes); ``publish`` warns when a copy exceeds ``MAX_PUBLISHED_MB``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from fgic.paths import project_root

MAX_PUBLISHED_MB = 2.0
MAX_FIGURE_PX = 1400  # published figures: widest side in pixels (the notebooks draw at 100 dpi, ~14 in at most)


def shrink_png(b64: str, max_px: int = MAX_FIGURE_PX) -> str:
    """A base64 PNG as a palette PNG (256 colours, transparency kept) no wider than ``max_px``; the original
    when that is not smaller (``fgic.viz.palette_png``)."""
    import base64

    from fgic.viz import palette_png

    return base64.b64encode(palette_png(base64.b64decode(b64), max_px)).decode()


def results_dir() -> Path:
    return notebooks_dir().parent / "results"


def publish(executed: Path, name: str) -> list[Path]:
    """Copy an executed notebook to ``results/<name>.ipynb`` without its run-time metadata."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    for key in ("papermill", "widgets"):  # run-time noise (paths, durations), not results
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        for o in cell.get("outputs", []):
            if "image/png" in o.get("data", {}):
                o["data"]["image/png"] = shrink_png(o["data"]["image/png"])
    out = results_dir()
    out.mkdir(exist_ok=True)
    paths = [out / f"{name}.ipynb"]
    nbformat.write(nb, paths[0])
    for p in paths:
        mb = p.stat().st_size / 2**20
        if mb > MAX_PUBLISHED_MB:
            print(f"  warning: {p.name} is {mb:.1f} MB (> {MAX_PUBLISHED_MB} MB)", file=sys.stderr)
    return paths


def notebooks_dir() -> Path:
    root = project_root()
    if root is None:
        raise FileNotFoundError("run-notebooks must be run from inside the fgic checkout")
    return root / "notebooks"


def find_notebooks(names: list[str] | None = None) -> list[Path]:
    """Numbered notebooks (``NN_*.ipynb``), all or those whose stem starts with one of ``names``."""
    nbs = sorted(p for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return nbs
    picked = [p for p in nbs if any(p.stem == n or p.stem.startswith(n) for n in names)]
    missing = [n for n in names if not any(p.stem == n or p.stem.startswith(n) for p in nbs)]
    if missing:
        raise FileNotFoundError(f"no notebook matches {missing}; available: {[p.stem for p in nbs]}")
    return picked


def pretrain(names: list[str], profile: str, retrain: bool = False) -> dict:
    """Train the grids of the notebooks ``names`` (stems) in one queue; return ``{"runs": n, "error": "", "sizes":
    {stem: runs in its grid}}``.

    Settings come from ``fgic.profiles.settings`` as in the notebook's kernel (``$FGIC_SET`` and friends are read the
    same way). A module with ``PRETRAIN = False`` (notebook 07: it decides at run time whether to train) is left to
    its notebook. Longest runs first: ``fgic.plan.estimate_seconds`` of each grid's first spec orders the grids.
    A failure (missing data, a failing run) is returned, not raised: the notebook then meets it and reports it.
    """
    from fgic.plan import spec_seconds
    from fgic.profiles import settings
    from fgic.reproduce import EXPERIMENTS, experiment
    from fgic.runs import train_many

    grids, sizes = [], {}
    for name in names:
        if name not in EXPERIMENTS:
            continue
        exp = experiment(name)
        if not getattr(exp, "PRETRAIN", True):
            continue
        grid = exp.grid(settings(exp.NOTEBOOK, profile))
        grids.append(grid)
        sizes[name] = len(grid)
    specs = {n: s for grid in grids for n, s in grid.items()}
    if not specs:
        return {"runs": 0, "error": "", "sizes": sizes}
    try:
        per_run = {id(g): spec_seconds(next(iter(g.values()))) for g in grids}
        grids.sort(key=lambda g: -per_run[id(g)])
    except Exception as e:  # noqa: BLE001 - the order is a courtesy; keep the notebooks' order
        print(f"pre-training in notebook order (no time estimate: {type(e).__name__}: {e})")
    order = {n: s for grid in grids for n, s in grid.items()}
    try:
        train_many(list(order.values()), group=profile, names=list(order), retrain=retrain)
    except Exception as e:  # noqa: BLE001 - reported by the notebook that needs the run
        return {"runs": len(order), "error": f"{type(e).__name__}: {e}", "sizes": sizes}
    return {"runs": len(order), "error": "", "sizes": sizes}


def notebook_jobs(jobs: int | str = "auto", profile: str = "default") -> int:
    """Notebooks executed at a time: ``"auto"`` is 2 on a CPU-only machine with 2 or more cores for the smoke and
    default profiles (after the queue, most of a notebook's time is one thread evaluating and drawing), else 1
    (the paper profile's notebooks share one GPU). An int is taken as given (at least 1)."""
    if jobs == "auto":
        if profile == "paper":
            return 1
        import torch

        return 1 if torch.cuda.is_available() else max(1, min(2, os.cpu_count() or 1))
    n = int(jobs)
    if n < 1:
        raise ValueError(f"jobs must be at least 1 or 'auto', got {jobs!r}")
    return n


class _Inline:
    """An executor that runs each task when it is submitted (``jobs=1``: the notebooks in this process)."""

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut


@contextlib.contextmanager
def _pool(jobs: int):
    if jobs == 1:
        yield _Inline()
        return
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def _execute(nb: str, out: str, profile: str, retrain: bool, timeout: int | None) -> dict:
    """Execute one notebook with papermill (its folder as working directory); ``{"ok", "error", "seconds"}``."""
    import papermill as pm

    t0 = time.perf_counter()
    res = {"ok": True, "error": ""}
    try:
        pm.execute_notebook(
            nb,
            out,
            parameters={"PROFILE": profile, "RETRAIN": retrain},
            kernel_name="python3",
            cwd=str(Path(nb).parent),
            progress_bar=False,
            request_save_on_cell_execute=False,
            execution_timeout=timeout,
            record_timing=False,
            store_widget_state=False,
        )
    except Exception as e:  # PapermillExecutionError carries the failing cell
        last_line = str(e).strip().splitlines()[-1] if str(e).strip() else ""
        res.update(ok=False, error=f"{type(e).__name__}: {last_line}")
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def run_notebooks(
    profile: str = "default",
    names: list[str] | None = None,
    retrain: bool = False,
    timeout: int | None = None,
    overrides: list[str] | None = None,
    env: dict[str, str] | None = None,
    pretrain_runs: bool = True,
    jobs: int | str = "auto",
) -> list[dict]:
    """Run the notebooks; return one result dict per notebook (name, ok, seconds, error, output).

    ``overrides`` (``["epochs=1", "max_steps=20"]``) reach every notebook's ``fgic.profiles.settings`` through
    ``$FGIC_SET`` in the kernel's environment (the notebooks are not edited); ``env`` adds more variables
    (``FGIC_ALLOW_CPU``, ``FGIC_KEEP_GOING``, ``FGIC_EXECUTOR``, ``FGIC_SLURM_*``: read by ``train_many``).
    ``pretrain_runs``: train every grid in one queue first (``pretrain``); ``False``: each notebook trains its own.
    ``jobs``: notebooks executed at a time (``notebook_jobs``)."""
    from fgic.profiles import check_profile, parse_bool

    profile = check_profile(profile)
    retrain = parse_bool(retrain, "retrain")
    nbs = find_notebooks(names)
    out_dir = notebooks_dir() / "_out"
    out_dir.mkdir(exist_ok=True)
    env = {
        "FGIC_PROFILE": profile,
        "TQDM_DISABLE": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR") or tempfile.mkdtemp(prefix="fgic-mpl-"),
        **({"FGIC_SET": ";".join(overrides)} if overrides else {}),
        **(env or {}),
    }
    jobs = notebook_jobs(jobs, profile)
    threads = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    old = {k: os.environ.get(k) for k in [*env, *threads]}
    os.environ.update(env)  # the kernels inherit them
    sizes: dict[str, int] = {}
    try:
        if pretrain_runs:
            t0 = time.perf_counter()
            pre = pretrain([nb.stem for nb in nbs], profile, retrain)
            sizes = pre.get("sizes", {})
            if pre["runs"]:
                tail = f"; the notebooks will report it: {pre['error']}" if pre["error"] else ""
                print(f"pre-trained the {pre['runs']} runs of the notebooks' grids in one queue "
                      f"({time.perf_counter() - t0:.0f} s){tail}")
            retrain = False  # trained just now: the notebooks reuse them
        if jobs > 1:  # the kernels share the cores: pin their threads (an explicit setting wins); not the queue's runs
            per = str(max(1, (os.cpu_count() or 1) // jobs))
            os.environ.update({k: os.environ.get(k) or per for k in threads})
            print(f"executing {len(nbs)} notebooks {jobs} at a time ({os.environ['OMP_NUM_THREADS']} thread(s) each)")
        order = sorted(nbs, key=lambda nb: -sizes.get(nb.stem, 0))  # the biggest grids (longest notebooks) first
        outs = {nb.stem: out_dir / f"{nb.stem}.{profile}.ipynb" for nb in nbs}
        done = {}
        bar = tqdm(total=len(nbs), desc=f"notebooks ({profile})", unit="nb", file=sys.stdout)
        with _pool(jobs) as pool:
            futures = {pool.submit(_execute, str(nb), str(outs[nb.stem]), profile, retrain, timeout): nb
                       for nb in order}
            for fut in as_completed(futures):
                nb = futures[fut]
                res = {"name": nb.stem, "output": str(outs[nb.stem]), **fut.result()}
                if res["ok"] and profile == "default" and not overrides:
                    res["published"] = [str(p) for p in publish(outs[nb.stem], nb.stem)]
                status = "ok  " if res["ok"] else "FAIL"
                tqdm.write(f"  {status} {nb.stem}  ({res['seconds']} s)  {res['error']}".rstrip(), file=sys.stdout)
                bar.update()
                done[nb.stem] = res
        bar.close()
        results = [done[nb.stem] for nb in nbs]
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return results
