"""Cost of GHOLM-Net's three-branch training step against a single-branch step (seed 003).

Same backbone (``gholm_convnext_atto``, same weights), same batch (16 images of 64 px, 10 classes), one
step = forward + backward + SGD step (the paper's optimiser settings). The single-branch model is GHOLM
with every switch off (plain cross-entropy on the Raw branch, no Grad-CAM). The three-branch step runs
the Raw forward, Grad-CAM, the crop box search (scipy on the CPU), the Crop and Drop forwards, SupCon and
one backward through all three graphs, so about 3x is expected; the target is <= 3.3x.
"""

from __future__ import annotations

import statistics
import time

import torch

from fgic.models import create_model

IMAGE_SIZE = 64  # px
BATCH = 16
NUM_CLASSES = 10
WARMUP = 2  # untimed steps per model
ITERS = 7  # timed steps per model, interleaved (the median is reported)
TARGET = 3.3  # acceptable three-branch / single-branch time ratio


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(model, opt, x, y, device) -> float:
    """Seconds of one training step (forward + backward + optimizer step)."""
    _sync(device)
    t0 = time.perf_counter()
    loss, _ = model.training_loss(x, y, None)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    _sync(device)
    return time.perf_counter() - t0


def _sgd(model):
    return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)  # section 4.2


def main(device: str = "cpu") -> dict:
    dev = torch.device(device)
    torch.manual_seed(0)
    three = create_model("gholm_convnext_atto", NUM_CLASSES).to(dev).train()
    single = create_model("gholm_convnext_atto", NUM_CLASSES, use_crop=False, use_drop=False, use_supcon=False).to(dev)
    single.load_state_dict(three.state_dict())
    single.train()
    x = torch.randn(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE, device=dev)  # (B, 3, H, W)
    y = torch.arange(BATCH, device=dev) % NUM_CLASSES  # every class, most twice: SupCon has positives
    opts = {single: _sgd(single), three: _sgd(three)}
    times = {single: [], three: []}
    for i in range(WARMUP + ITERS):  # interleaved, so a change in machine load hits both alike
        for model in (single, three):
            t = _step(model, opts[model], x, y, dev)
            if i >= WARMUP:
                times[model].append(t)
    t_single, t_three = statistics.median(times[single]), statistics.median(times[three])
    out = {
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "image_size": IMAGE_SIZE,
        "batch": BATCH,
        "single_branch_step_s": t_single,
        "three_branch_step_s": t_three,
        "ratio": t_three / t_single,
        "target_ratio": TARGET,
    }
    print(f"GHOLM-Net training step, convnext_atto, batch {BATCH} at {IMAGE_SIZE} px on {dev}:")
    print(f"  single branch {1e3 * t_single:8.1f} ms")
    print(f"  three branch  {1e3 * t_three:8.1f} ms")
    print(f"  ratio         {out['ratio']:8.2f} x  (target <= {TARGET} x)")
    return out


if __name__ == "__main__":
    main()
