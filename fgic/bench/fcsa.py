"""ACANet with FCSA against ResNet18: fused inference and training-step time, side by side.

``fcsa_infer_ratio`` = ACANet-18 (ACCB fused with ``reparameterize``, FCSA kept) inference time / ResNet18
inference time, batch 8 at 224 px, eval mode, no grad (target <= 2.0; 7.4 with the former 49-offset
loop, 2.73 with 8 x 8 query tiles over 14 x 14 key blocks). ``fcsa_train_ratio`` = the same for one
training step (forward, cross-entropy, backward, SGD) of the unfused ACANet against ResNet18, batch 8 at
112 px (reported, no target). Short blocks of steps alternate between the two models, many times
(``fgic.bench._timing``): on a shared machine each ratio is then a pair measured close in time, and the
median over the repeats is reported with its spread. On CPU, ``fcsa_infer_ratio_cpu1`` is the inference
ratio again on one thread, timed by the thread's CPU clock: other processes' load then does not count
(their cache and memory traffic still does), which keeps it steady where the wall-clock ratio is not.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from fgic.bench._timing import alternate, fmt_ratio, ratio_stats
from fgic.models import create_model, reparameterize

TARGET = 2.0


def _infer(model, x):
    def step():
        with torch.no_grad():
            model(x)

    return step


def _train(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _cpu_times(fns: dict, steps: int, repeats: int) -> dict[str, list[float]]:
    """Like ``alternate`` on one thread, timed by the thread's CPU clock: {name: [s/step of each repeat]}."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for fn in fns.values():
            fn()
        out: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                t0 = time.thread_time()
                for _ in range(steps):
                    fn()
                out[name].append((time.thread_time() - t0) / steps)
        return out
    finally:
        torch.set_num_threads(threads)


def main(device: str = "cpu", tiny: bool = False) -> dict:
    size, train_size, batch = (32, 32, 2) if tiny else (224, 112, 8)
    steps, repeats = (1, 2) if tiny else (2, 11)
    torch.manual_seed(0)
    acanet = reparameterize(create_model("acanet18", 10).eval()).to(device)
    resnet = create_model("resnet18", 10).eval().to(device)
    x = torch.randn(batch, 3, size, size, device=device)  # (B, 3, H, W)
    t = alternate({"acanet": _infer(acanet, x), "resnet": _infer(resnet, x)}, steps, repeats, 1, device)
    infer = ratio_stats(t["acanet"], t["resnet"])
    cpu1 = None
    if device == "cpu":
        c = _cpu_times({"acanet": _infer(acanet, x), "resnet": _infer(resnet, x)}, 1, 2 if tiny else 7)
        cpu1 = ratio_stats(c["acanet"], c["resnet"])

    acanet_tr = create_model("acanet18", 10).train().to(device)
    resnet_tr = create_model("resnet18", 10).train().to(device)
    xt = torch.randn(batch, 3, train_size, train_size, device=device)
    y = torch.arange(batch, device=device) % 10
    train_fns = {"acanet": _train(acanet_tr, xt, y), "resnet": _train(resnet_tr, xt, y)}
    tt = alternate(train_fns, steps, repeats if tiny else 7, 1, device)
    train = ratio_stats(tt["acanet"], tt["resnet"])
    print(f"FCSA benchmark on {device} ({torch.get_num_threads()} threads), batch {batch}")
    ms = {k: 1e3 * min(v) for k, v in t.items()}
    print(f"  inference at {size} px: ACANet fused {ms['acanet']:.1f} ms, ResNet18 {ms['resnet']:.1f} ms")
    print("  " + fmt_ratio("fcsa_infer_ratio", infer, f"<= {TARGET}"))
    if cpu1 is not None:
        ms = {k: 1e3 * statistics.median(v) for k, v in c.items()}
        print(f"  one thread, CPU time: ACANet fused {ms['acanet']:.1f} ms, ResNet18 {ms['resnet']:.1f} ms (medians)")
        print("  " + fmt_ratio("fcsa_infer_ratio_cpu1", cpu1))
    ms = {k: 1e3 * min(v) for k, v in tt.items()}
    print(f"  training step at {train_size} px: ACANet {ms['acanet']:.1f} ms, ResNet18 {ms['resnet']:.1f} ms")
    print("  " + fmt_ratio("fcsa_train_ratio", train))
    out = {"fcsa_infer_ratio": infer["median"], "fcsa_train_ratio": train["median"], "infer": infer, "train": train}
    if cpu1 is not None:
        out.update(fcsa_infer_ratio_cpu1=cpu1["median"], infer_cpu1=cpu1)
    return out
