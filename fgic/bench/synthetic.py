"""Generation speed of the embedded benchmark (target: at least 500 images/s at 64 px on one core)."""

from __future__ import annotations

import torch


def main(device: str = "cpu", tiny: bool = False) -> dict:
    from fgic.data.synthetic import benchmark

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the target is per core
    try:
        rates = {size: benchmark(image_size=size, n=16 if tiny else 512) for size in (32, 64, 128)}
    finally:
        torch.set_num_threads(threads)
    print(f"synthetic_img_s_64px = {rates[64]:.0f} (target >= 500 on one core)")
    return {"img_s": rates}
