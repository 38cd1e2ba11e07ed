"""Turn a CUB-layout root into the ``folder`` layout (``python -m fgic make-folder-tree SRC DST``).

The worked example of the README: ``../shared/data/cub100`` (CUB_200_2011 layout) becomes
``DST/train/<NNN.Class_Name>/*.jpg`` and ``DST/test/...`` made of links (symbolic by default, or hard
links), so no image is copied, and ``build_dataset("folder", root=DST)`` then loads it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tqdm.auto import tqdm

LINKS = ("symlink", "hardlink", "copy")


def cub_to_folder_tree(src: str | os.PathLike, dst: str | os.PathLike, link: str = "symlink") -> dict:
    """Write the ImageFolder tree of the CUB root ``src`` under ``dst``; returns ``{split: images}``.

    Class folders keep CUB's folder names (``001.Black_footed_Albatross``). ``dst`` must not hold a
    ``train`` or ``test`` folder yet (nothing is overwritten).
    """
    from fgic.data.cub import cub_samples

    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    train, test, _ = cub_samples(src)
    dst = Path(dst)
    for split in ("train", "test"):
        if (dst / split).exists():
            raise FileExistsError(f"{dst / split} already exists; choose an empty destination")
    counts = {}
    for split, samples in (("train", train), ("test", test)):
        for path, _, _ in tqdm(samples, desc=f"make-folder-tree {split}", mininterval=1.0):
            p = Path(path).resolve()
            out = dst / split / p.parent.name / p.name
            out.parent.mkdir(parents=True, exist_ok=True)
            if link == "symlink":
                out.symlink_to(p)
            elif link == "hardlink":
                os.link(p, out)
            else:
                shutil.copy2(p, out)
        counts[split] = len(samples)
    return counts
