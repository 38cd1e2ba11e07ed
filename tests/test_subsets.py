"""Class-balanced evaluation subsets and the full-training-split protocol (``val_fraction: 0``)."""

import numpy as np
import pytest

from fgic import profiles, runs
from fgic.data import FULL_TRAIN, balanced_indices, balanced_sample, build_dataset, protocol
from fgic.runs import RunSpec

DATA = {"num_classes": 3, "images_per_class": 6, "test_per_class": 4, "image_size": 32}


def test_balanced_indices_same_count_per_class_and_seeded():
    targets = np.arange(100) % 10  # interleaved labels, as the benchmark's test split
    idx = balanced_indices(targets, 3, seed=0)
    counts = np.bincount(targets[idx], minlength=10)
    assert counts.tolist() == [3] * 10 and len(set(idx)) == 30
    assert idx == balanced_indices(targets, 3, seed=0)
    assert idx != balanced_indices(targets, 3, seed=1)
    # the evenly spaced pick this replaces keeps only some classes of interleaved labels
    spaced = np.linspace(0, 99, 30).astype(int)
    assert len(set(targets[spaced].tolist())) < 10 or np.bincount(targets[spaced]).std() > 0
    with pytest.raises(ValueError, match="fewer"):
        balanced_indices(targets, 11)
    assert len(balanced_indices(targets, None)) == 100  # None: as many as the smallest class has


def test_balanced_sample_sizes():
    targets = np.arange(100) % 10
    assert np.bincount(targets[balanced_sample(targets, 35)]).tolist() == [3] * 10
    few = balanced_sample(targets, 4, seed=2)
    assert len(few) == 4 and len(set(targets[few].tolist())) == 4  # one image of each of 4 classes
    assert few != balanced_sample(targets, 4, seed=5)
    assert len(balanced_sample(targets, None)) == 100


def test_balanced_indices_on_a_data_set():
    ds = build_dataset("synthetic", split="test", **DATA)
    idx = balanced_indices(ds, 2, seed=3)
    labels = [ds[i][1] for i in idx]
    assert sorted(np.bincount(labels).tolist()) == [2, 2, 2]


def test_val_fraction_zero_is_the_full_training_split():
    full = build_dataset("synthetic", split="train", **DATA, **FULL_TRAIN)
    trainval = build_dataset("synthetic", split="trainval", **DATA)
    assert len(full) == len(trainval) == 18
    assert len(build_dataset("synthetic", split="val", **DATA, **FULL_TRAIN)) == 0
    # the default (val_fraction 0.1) keeps round(0.6) = 1 of the 6 images per class for validation
    assert len(build_dataset("synthetic", split="train", **DATA)) == 3 * 5
    assert len(build_dataset("synthetic", split="val", **DATA)) == 3 * 1


def test_val_fraction_zero_on_an_image_list_loader():
    from fgic.data.base import select_split

    trainval = [(f"img{i}.jpg", i % 3) for i in range(12)]
    test = [("t.jpg", 0)]
    assert select_split(trainval, test, "train", 0.0, 0) == trainval
    assert select_split(trainval, test, "val", 0.0, 0) == []
    assert len(select_split(trainval, test, "val", 0.25, 0)) == 3  # the default carve-out, for contrast


def test_run_without_validation_split_records_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FGIC_RUNS", str(tmp_path))
    s = RunSpec(
        model="resnet18",
        data_kw={**DATA, **FULL_TRAIN},
        transform_kw={"image_size": 32},
        train={"epochs": 1, "batch_size": 6, "lr": 0.01, "accelerator": "cpu"},
    )
    rec = runs.train(s, group="t", progress=False)
    assert rec["sizes"] == {"train": 18, "val": 0, "test": 12}
    assert "val_top1" not in rec.metrics and "test_top1" in rec.metrics
    assert all("val_acc" not in row for row in rec.history)
    text = protocol(rec)
    assert "whole training split (18 images, no validation split)" in text and "12-image" in text
    held = protocol({**rec, "sizes": {"train": 15, "val": 3, "test": 12}, "params": s.to_dict()})
    assert "15 images" in held and "the other 3" in held


@pytest.mark.parametrize("notebook, module", [("05_convnextv2_scra", "scra")])  # 04: test_experiments_gholm
def test_paper_profiles_train_on_the_full_training_split(notebook, module):
    import importlib

    ex = importlib.import_module(f"fgic.experiments.{module}")
    for profile in profiles.PROFILES:
        S = profiles.settings(notebook, profile)
        grid = ex.grid(S)
        for name, s in grid.items():
            vf = s.data_kw.get("val_fraction", 0.1)
            if profile == "paper" and s.dataset != "synthetic":
                assert vf == 0, name  # the papers' protocol on their data sets
            else:
                assert vf > 0, name  # our addition: the held-out validation split
