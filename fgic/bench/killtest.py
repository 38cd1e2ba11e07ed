"""Kill test: SIGKILL a training run again and again, resume it each time, compare with an uninterrupted run.

``python -m fgic bench killtest`` trains a tiny spec on the embedded benchmark in child processes
(one torch thread each, so results are comparable bit for bit) and kills them two ways, alternately:

- ``in-write``: the child kills itself inside an atomic write (checkpoint or record) at a random write,
  either with the temporary file half written (a torn write, before the rename) or just after the rename;
- ``random``: the parent sends SIGKILL at a random time within the next epochs after the child started
  training (its first record write).

After every kill each file of the run must load (record.json, last.pt); the next start must clean the
orphaned temporary files and resume. At the end: status finished, no orphan, record and checkpoint
agree, and history, metrics and final weights are bit-identical to the uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SPEC = dict(
    model="resnet18",
    data_kw={"num_classes": 3, "images_per_class": 6, "test_per_class": 4, "image_size": 32, "cache": False},
    transform_kw={"image_size": 32},
)


def spec_dict(epochs: int) -> dict:
    return {**SPEC, "train": {"epochs": epochs, "batch_size": 6, "lr": 0.01, "accelerator": "cpu"}}


def _child(spec: dict, group: str, kill_at_write: int, torn: bool) -> None:
    """Train ``spec`` (resuming); with ``kill_at_write`` > 0 SIGKILL itself inside that atomic write."""
    torch.set_num_threads(1)
    os.environ["TQDM_DISABLE"] = "1"
    import fgic.engine as engine
    from fgic import runs

    original, count = engine._replace_durably, [0]

    def replace(tmp: Path, path: Path) -> None:
        count[0] += 1
        if count[0] == kill_at_write and torn:
            with open(tmp, "r+b") as f:  # a write cut in the middle: half the bytes, no rename
                f.truncate(os.path.getsize(tmp) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        original(tmp, path)
        if count[0] == kill_at_write:
            os.kill(os.getpid(), signal.SIGKILL)  # renamed, the process dies before anything else

    engine._replace_durably = replace
    runs.train(runs.RunSpec(**spec), group=group, progress=False)


def _start(spec: dict, group: str, runs_root: Path, kill_at_write: int = 0, torn: bool = False) -> subprocess.Popen:
    env = {**os.environ, "FGIC_RUNS": str(runs_root), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    args = [sys.executable, "-m", "fgic.bench.killtest", json.dumps(spec), group, str(kill_at_write), str(int(torn))]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _state(d: Path) -> dict:
    """What a user would see after a kill: every file that exists must load."""
    out = {}
    if (d / "record.json").is_file():
        out["record"] = json.loads((d / "record.json").read_text())  # raises on a corrupt record
    if (d / "last.pt").is_file():
        out["epoch"] = torch.load(d / "last.pt", map_location="cpu", weights_only=True)["epoch"]
    if (d / "final.pt").is_file():
        torch.load(d / "final.pt", map_location="cpu", weights_only=True)
    return out


def _wait_for_training(d: Path, launched: float, p: subprocess.Popen) -> int:
    """Wait until the child has written its first record (training starts); return the epochs done by then."""
    rec = d / "record.json"
    while p.poll() is None:
        if rec.is_file() and rec.stat().st_mtime >= launched:
            try:
                return json.loads(rec.read_text()).get("last_epoch", 0)
            except ValueError:  # only a bug could make it unreadable: _state reports it after the kill
                return 0
        time.sleep(0.05)
    return 0


def killtest(kills: int = 20, epochs: int | None = None, seed: int = 0, runs_root: Path | None = None) -> dict:
    """Kill a run ``kills`` times (alternately in a write and at a random time), finish it, compare.

    Returns ``{"kills", "in_write", "random", "corrupt", "orphans_after_restart", "identical", "problems"}``;
    raises nothing on a mismatch (the caller asserts), but a file that does not load counts as corrupt.
    """
    from fgic import runs

    rng = random.Random(seed)
    epochs = epochs or kills + 2
    spec = spec_dict(epochs)
    rid = runs.RunSpec(**spec).run_id
    root = Path(runs_root or tempfile.mkdtemp(prefix="fgic-killtest-"))
    ref = _start(spec, "reference", root)
    _, err = ref.communicate()
    if ref.returncode != 0:
        raise RuntimeError(f"the uninterrupted run failed:\n{err[-2000:]}")
    d = root / "killed" / rid
    epoch_seconds = json.loads((root / "reference" / rid / "record.json").read_text())["wall_time"] / epochs
    done = {"in_write": 0, "random": 0}
    corrupt = []
    while sum(done.values()) < kills:
        in_write = sum(done.values()) % 2 == 0
        launched = time.time()
        p = _start(spec, "killed", root, kill_at_write=rng.randint(1, 4) if in_write else 0, torn=rng.random() < 0.5)
        if not in_write:
            left = epochs - _wait_for_training(d, launched, p)
            time.sleep(rng.uniform(0, min(left, 3) * epoch_seconds))  # somewhere in the next epochs, not past the end
            p.send_signal(signal.SIGKILL)
        _, err = p.communicate()
        if p.returncode == 0:
            break  # finished before the kill: too few epochs were left
        if p.returncode != -signal.SIGKILL:
            raise RuntimeError(f"the child failed (exit {p.returncode}):\n{err[-3000:]}")
        done["in_write" if in_write else "random"] += 1
        try:
            if d.exists():
                _state(d)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the finding
            corrupt.append(f"after kill {sum(done.values())}: {type(e).__name__}: {e}")
    final = _start(spec, "killed", root)
    _, err = final.communicate()
    if final.returncode != 0:
        raise RuntimeError(f"the final resume failed:\n{err[-3000:]}")
    orphans_left = len(runs.orphans(d))  # the final start removed what the kills left
    a = json.loads((root / "reference" / rid / "record.json").read_text())
    b = json.loads((d / "record.json").read_text())
    strip = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "train_img_s")} for r in h]
    wa = torch.load(root / "reference" / rid / "final.pt", weights_only=True)["model"]
    wb = torch.load(d / "final.pt", weights_only=True)["model"]
    identical = (
        strip(a["history"]) == strip(b["history"])
        and a["metrics"] == b["metrics"]
        and all(torch.equal(wa[k], wb[k]) for k in wa)
    )
    return {
        "kills": sum(done.values()),
        **done,
        "corrupt": corrupt,
        "orphans_after_restart": orphans_left,
        "identical": identical,
        "status": b["status"],
        "problems": runs.check_run(d),
        "epochs": epochs,
        "runs_root": str(root),
    }


def main(device: str = "cpu", kills: int = 20) -> dict:
    if device != "cpu":
        print("killtest runs on the CPU (one thread per process); --device is ignored")
    with tempfile.TemporaryDirectory(prefix="fgic-killtest-") as tmp:
        res = killtest(kills, runs_root=Path(tmp))
    print(
        f"killtest: {res['kills']} kills ({res['in_write']} inside writes, {res['random']} at random times), "
        f"{len(res['corrupt'])} corrupt files, {res['orphans_after_restart']} orphans after restart, "
        f"final status {res['status']}, bit-identical to the uninterrupted run: {res['identical']}, "
        f"record/checkpoint problems: {res['problems'] or 'none'}"
    )
    return res


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), bool(int(sys.argv[4])))
