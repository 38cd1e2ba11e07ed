"""Cost of GHOLM-Net's three-branch training step against a single-branch step (seed 003).

Same backbone (``gholm_convnext_atto``, same weights), same batch (16 images of 64 px, 10 classes), one
step = forward + backward + SGD step (the paper's optimiser settings). The single-branch model is GHOLM
with every switch off (plain cross-entropy on the Raw branch, no Grad-CAM). The three-branch step runs
the Raw forward, Grad-CAM, the crop box search (scipy on the CPU), the Crop and Drop forwards, SupCon and
one backward through all three graphs, so about 3x is expected (3.0 is the floor: three forward/backward
passes); the target is <= 3.1x. Blocks of ``STEPS`` steps alternate between the two models for
``REPEATS`` repeats after a warm-up (``fgic.bench._timing``); the median of the paired per-repeat ratios
is printed with its spread.
"""

from __future__ import annotations

import statistics

import torch

from fgic.bench._timing import alternate, fmt_ratio, ratio_stats
from fgic.models import create_model

IMAGE_SIZE = 64  # px
BATCH = 16
NUM_CLASSES = 10
WARMUP = 3  # untimed steps per model
STEPS = 10  # timed steps per block
REPEATS = 7  # alternating blocks per model (the median of the paired ratios is reported)
TARGET = 3.1  # acceptable three-branch / single-branch time ratio


def _stepper(model, opt, x, y):
    def step():  # one training step: forward + backward + optimizer step
        loss, _ = model.training_loss(x, y, None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _sgd(model):
    return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)  # section 4.2


def main(
    device: str = "cpu",
    tiny: bool = False,
    steps: int | None = None,
    repeats: int | None = None,
    warmup: int | None = None,
) -> dict:
    """Three-branch / one-branch step time; ``steps`` per block, ``repeats`` alternating blocks, ``warmup`` steps."""
    dev = torch.device(device)
    torch.manual_seed(0)
    three = create_model("gholm_convnext_atto", NUM_CLASSES).to(dev).train()
    single = create_model("gholm_convnext_atto", NUM_CLASSES, use_crop=False, use_drop=False, use_supcon=False).to(dev)
    single.load_state_dict(three.state_dict())
    single.train()
    x = torch.randn(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE, device=dev)  # (B, 3, H, W)
    y = torch.arange(BATCH, device=dev) % NUM_CLASSES  # every class, most twice: SupCon has positives
    d_steps, d_repeats, d_warmup = (1, 2, 1) if tiny else (STEPS, REPEATS, WARMUP)
    steps, repeats = steps or d_steps, repeats or d_repeats
    warmup = d_warmup if warmup is None else warmup
    t = alternate(
        {"single": _stepper(single, _sgd(single), x, y), "three": _stepper(three, _sgd(three), x, y)},
        steps,
        repeats,
        warmup,
        device,
    )
    st = ratio_stats(t["three"], t["single"])
    t_single, t_three = statistics.median(t["single"]), statistics.median(t["three"])
    out = {
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "image_size": IMAGE_SIZE,
        "batch": BATCH,
        "steps": steps,
        "repeats": repeats,
        "single_branch_step_s": t_single,
        "three_branch_step_s": t_three,
        "ratio": st["median"],
        "ratio_stats": st,
        "target_ratio": TARGET,
    }
    print(f"GHOLM-Net training step, convnext_atto, batch {BATCH} at {IMAGE_SIZE} px on {dev}:")
    print(f"  single branch {1e3 * t_single:8.1f} ms")
    print(f"  three branch  {1e3 * t_three:8.1f} ms")
    print("  " + fmt_ratio("gholm_step_ratio", st, f"<= {TARGET}"))
    return out


if __name__ == "__main__":
    main()
