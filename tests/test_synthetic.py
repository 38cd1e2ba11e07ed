"""The synthetic fine-grained benchmark: determinism, splits, annotations, one-part differences, cache."""

import hashlib

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

import fgic.data.synthetic as syn
from fgic.data import build_dataset
from fgic.data.synthetic_render import ATTRIBUTE_PARTS, ATTRIBUTES, part_boxes, render, sample_scenes

TINY = dict(num_classes=4, images_per_class=6, test_per_class=3, image_size=32, cache=False)


def _hashes(ds):
    return [hashlib.sha1(img.numpy().tobytes()).hexdigest() for img in ds.images]


def test_deterministic_from_seed():
    a = build_dataset("synthetic", split="trainval", seed=1, **TINY)
    b = build_dataset("synthetic", split="trainval", seed=1, **TINY)
    c = build_dataset("synthetic", split="trainval", seed=2, **TINY)
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes)
    assert not torch.equal(a.images, c.images)
    assert a.classes == c.classes  # the class list depends on num_classes only


def test_splits_sizes_disjoint_and_labels():
    K, n = TINY["num_classes"], TINY["images_per_class"]
    parts = {s: build_dataset("synthetic", split=s, val_fraction=0.34, **TINY) for s in syn.SPLITS}
    assert len(parts["trainval"]) == K * n and len(parts["test"]) == K * TINY["test_per_class"]
    assert len(parts["train"]) + len(parts["val"]) == K * n
    assert np.bincount(parts["val"].targets, minlength=K).tolist() == [2] * K  # stratified
    h = {s: set(_hashes(d)) for s, d in parts.items()}
    assert not h["train"] & h["val"] and h["train"] | h["val"] == h["trainval"]
    assert not h["test"] & h["trainval"]  # an independent stream
    per_class = {"train": n - 2, "val": 2, "trainval": n, "test": TINY["test_per_class"]}
    for s, d in parts.items():  # labels 0 .. K-1 only, the same count of each class
        assert np.bincount(d.labels.numpy(), minlength=K).tolist() == [per_class[s]] * K and d.num_classes == K, s


def test_items_and_transform():
    ds = build_dataset("synthetic", split="test", **TINY)
    x, y = ds[0]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert type(y) is int and [ds[i][1] for i in range(len(ds))] == ds.labels.tolist()
    ds.transform = v2.RandomHorizontalFlip(p=1.0)
    x2, _ = ds[0]
    assert x2.dtype == torch.uint8 and torch.equal(x2, ds.images[0].flip(-1))


def test_annotations_inside_image_and_object():
    ds = build_dataset("synthetic", split="trainval", **dict(TINY, image_size=48))
    for i in range(len(ds)):
        ann = ds.annotation(i)
        W, H = ann["size"]
        boxes = [ann["object"], *ann["parts"].values()]
        for x0, y0, x1, y1 in boxes:
            assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
        ox0, oy0, ox1, oy1 = ann["object"]
        for x0, y0, x1, y1 in ann["parts"].values():
            assert x0 >= ox0 - 0.5 and y0 >= oy0 - 0.5 and x1 <= ox1 + 0.5 and y1 <= oy1 + 0.5
        assert set(ann["parts"]) == set(ds.part_names)
        assert set(ann["discriminative"]) <= set(ATTRIBUTE_PARTS) and ann["discriminative"]


def test_class_table_twins_and_hardest_pairs():
    ds = build_dataset("synthetic", split="test", **dict(TINY, num_classes=12))
    table = np.array([[ATTRIBUTES[p].index(a[p]) for p in ATTRIBUTE_PARTS] for a in ds.class_attributes])
    assert len({tuple(r) for r in table}) == 12 and len(set(ds.classes)) == 12
    pairs = ds.hardest_pairs()
    assert {p for _, _, p in pairs} == set(ATTRIBUTE_PARTS)  # every part separates some pair
    for i, j, p in pairs:
        diff = table[i] != table[j]
        assert diff.sum() == 1 and ATTRIBUTE_PARTS[int(np.argmax(diff))] == p
    assert len(ds.hardest_pairs(2)) == 2
    for c in range(12):  # every class has a twin one part away, and that part is "discriminative"
        twins = [(p, i if j == c else j) for i, j, p in pairs if c in (i, j)]
        assert twins and {p for p, _ in twins} == set(ds.discriminative[c])


@pytest.mark.parametrize("size", [32, 64])
def test_one_part_change_renders_only_near_that_part(size):
    rng = np.random.default_rng(0)
    base = np.stack([rng.integers(0, len(v), 6) for v in ATTRIBUTES.values()], 1)  # (6, 5)
    scene = sample_scenes(rng, base, size, clutter=1.0)
    img = render(scene).astype(int)
    boxes = part_boxes(scene)
    for j, part in enumerate(ATTRIBUTE_PARTS):
        attrs = base.copy()
        attrs[:, j] = (attrs[:, j] + 1) % len(ATTRIBUTES[part])
        other = dict(scene, attrs=attrs)
        img2, boxes2 = render(other).astype(int), part_boxes(other)
        changed = np.abs(img2 - img).max(1) > 0  # (N, S, S)
        ys, xs = np.mgrid[:size, :size] + 0.5
        for n in range(len(base)):
            assert changed[n].any(), f"{part} invisible at {size} px"  # parts stay visible at 32 px
            x0, y0 = np.minimum(boxes[part][n, :2], boxes2[part][n, :2]) - 2  # 2 px of anti-aliasing
            x1, y1 = np.maximum(boxes[part][n, 2:], boxes2[part][n, 2:]) + 2
            near = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
            assert not (changed[n] & ~near).any(), f"changing the {part} altered pixels far from it"


@pytest.mark.parametrize("size", [32, 448])
def test_resolution_range(size):
    ds = build_dataset("synthetic", split="test", **dict(TINY, image_size=size, test_per_class=1))
    assert ds.images.shape == (4, 3, size, size)
    beak = np.array([ds.annotation(i)["parts"]["beak"] for i in range(len(ds))])
    assert ((beak[:, 2:] - beak[:, :2]) >= 0.05 * size).all()  # parts scale with the image
    with pytest.raises(ValueError):
        build_dataset("synthetic", **dict(TINY, image_size=16))
    with pytest.raises(TypeError):
        build_dataset("synthetic", **dict(TINY, colour_knob=1))


def test_render_bird_explicit_pose():
    img, boxes = syn.render_bird({"beak": "hooked"}, size=64, angle=0.0, flip=1.0, cx=32.0, cy=32.0)
    flipped, fboxes = syn.render_bird({"beak": "hooked"}, size=64, angle=0.0, flip=-1.0, cx=32.0, cy=32.0)
    assert img.shape == (3, 64, 64) and img.dtype == np.uint8
    assert boxes["beak"][0] > 32 > fboxes["beak"][2]  # facing right, then mirrored to face left
    assert np.isclose(boxes["beak"][0], 64 - fboxes["beak"][2], atol=1e-3)


def test_cache_hit_and_atomic_write(tmp_path, monkeypatch):
    monkeypatch.setenv("FGIC_CACHE", str(tmp_path))
    kw = dict(TINY, cache=True)

    def failing_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(syn.torch, "save", failing_save)
    with pytest.raises(OSError):
        build_dataset("synthetic", split="test", **kw)
    assert not list(tmp_path.rglob("*")) or not list((tmp_path / "synthetic").iterdir())  # nothing half-written
    monkeypatch.undo()
    monkeypatch.setenv("FGIC_CACHE", str(tmp_path))
    first = build_dataset("synthetic", split="test", **kw)
    files = list((tmp_path / "synthetic").iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"

    def no_generate(*a, **k):
        raise AssertionError("cache miss")

    monkeypatch.setattr(syn, "generate", no_generate)
    again = build_dataset("synthetic", split="test", **kw)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    with pytest.raises(AssertionError, match="cache miss"):  # another knob -> another file
        build_dataset("synthetic", split="test", **dict(kw, clutter=0.3))


def test_profiles_and_benchmark(capsys):
    assert set(syn.PROFILES) == {"smoke", "default"}
    for knobs in syn.PROFILES.values():
        assert set(knobs) <= set(syn.KNOBS)
    assert syn.benchmark(image_size=32, n=8) > 0
    assert "images/s" in capsys.readouterr().out


def _knn_accuracy(train_x, train_y, test_x, test_y, k: int = 15) -> float:
    d = ((test_x[:, None] - train_x[None]) ** 2).sum(-1)  # (N_test, N_train)
    votes = train_y[np.argsort(d, 1)[:, :k]]  # (N_test, k)
    pred = np.array([np.bincount(v, minlength=train_y.max() + 1).argmax() for v in votes])
    return float((pred == test_y).mean())


@pytest.mark.parametrize("object_scale", [0.95, 0.6])
def test_position_and_size_carry_no_class_information(object_scale):
    """A k-NN classifier on the placement box alone (position + size) stays within chance + 5 points on
    150 test images per class, while the same classifier on the drawn object box does better: the check
    can tell a class cue from none."""
    from fgic.data.synthetic import class_table
    from fgic.data.synthetic_render import envelope_boxes, part_boxes, sample_scenes

    K, size, table = 10, 64, class_table(10)

    def boxes(n_per, seed):
        y = np.tile(np.arange(K), n_per)
        s = sample_scenes(np.random.default_rng(seed), table[y], size, object_scale, 0.6, 30.0)
        return envelope_boxes(s) / size, part_boxes(s)["object"] / size, y

    pl_tr, ob_tr, y_tr = boxes(300, 1)
    pl_te, ob_te, y_te = boxes(150, 2)
    assert _knn_accuracy(pl_tr, y_tr, pl_te, y_te) <= 1 / K + 0.05
    assert _knn_accuracy(ob_tr, y_tr, ob_te, y_te) > 1 / K + 0.05  # part shape shows in the tight box
    if object_scale < 0.9:  # room to move: positions really vary
        centre = (pl_te[:, :2] + pl_te[:, 2:]) / 2
        assert centre.std(0).min() > 0.05


def test_placement_box_contains_the_object_and_scale_range_is_checked():
    ds = build_dataset("synthetic", split="test", **dict(TINY, object_scale=0.6, scale_range=[0.7, 1.0]))
    for i in range(len(ds)):
        ann = ds.annotation(i)
        (px0, py0, px1, py1), (ox0, oy0, ox1, oy1) = ann["placement"], ann["object"]
        assert px0 <= ox0 + 1e-4 and py0 <= oy0 + 1e-4 and px1 >= ox1 - 1e-4 and py1 >= oy1 - 1e-4
    with pytest.raises(ValueError, match="scale_range"):
        build_dataset("synthetic", split="test", **dict(TINY, scale_range=[1.2, 0.8]))
