"""Heatmap scores against ground-truth object and part boxes."""

import math

import pytest
import torch

from fgic.localize import centre_prior, localisation_scores, score_heatmap_fn


def ann(obj=(0, 0, 8, 8), parts=None, disc=(), size=(8, 8)):
    return {"object": obj, "parts": parts or {}, "discriminative": list(disc), "size": size}


def test_scores_of_hand_made_heatmaps():
    hm = torch.zeros(2, 8, 8)
    hm[0, 1, 6] = 1.0  # peak at pixel (x=6, y=1), inside the beak box
    hm[1, 6, 1] = 3.0  # peak at (x=1, y=6), inside no part box
    hm[1, 0, 7] = 1.0  # a quarter of image 1's mass sits in the beak box
    parts = {"beak": (5, 0, 8, 3), "tail": (0, 5, 3, 8)}
    anns = [ann(obj=(4, 0, 8, 4), parts=parts, disc=["beak"]), ann(parts=parts, disc=["beak"])]
    s = localisation_scores(hm, anns)
    assert s["pointing_object"].tolist() == [1.0, 1.0]
    assert s["pointing_part"].tolist() == [1.0, 0.0]
    assert s["energy_part"].tolist() == pytest.approx([1.0, 0.25])
    assert s["energy_object"][0] == pytest.approx(1.0)


def test_boxes_are_rescaled_from_the_annotation_size_and_parts_are_optional():
    hm = torch.zeros(1, 4, 4)
    hm[0, 0, 3] = 1.0  # top-right pixel of a 4x4 map
    s = localisation_scores(hm, [ann(obj=(4, 0, 8, 4), size=(8, 8))])  # box in 8x8 pixels = top-right quadrant
    assert s["pointing_object"].item() == 1.0 and s["energy_object"].item() == pytest.approx(1.0)
    assert math.isnan(s["pointing_part"].item())  # no discriminative parts: not scored


def test_centre_prior_and_score_heatmap_fn():
    prior = centre_prior(2, 9, 9)
    assert prior.shape == (2, 9, 9) and prior[0, 4, 4] == pytest.approx(1.0) and prior[0, 0, 0] < 0.05

    class DS:
        def __getitem__(self, i):
            return torch.zeros(3, 8, 8), i % 2

        def annotation(self, i):
            return ann(obj=(0, 0, 2, 2), parts={"eye": (0, 0, 2, 2)}, disc=["eye"])

    def corner(images, labels):  # a heatmap that always points at the top-left corner
        hm = torch.zeros(len(images), 8, 8)
        hm[:, 0, 0] = 1
        return hm

    s = score_heatmap_fn(corner, DS(), list(range(5)), batch_size=2)
    assert s["pointing_part"] == 1.0 and s["prior_pointing_part"] == 0.0 and s["energy_object"] == 1.0


class _NoBoxes(torch.utils.data.Dataset):
    """A data set like the cub100 subset: images and labels, annotations without boxes."""

    name = "noboxes"

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.rand(3, 8, 8), i % 2

    def annotation(self, i):
        return {"size": (8, 8)}


def test_images_without_an_object_box_score_nan_not_keyerror():
    hm = torch.zeros(2, 4, 4)
    hm[:, 0, 3] = 1.0
    s = localisation_scores(hm, [{"size": (8, 8)}, ann(obj=(4, 0, 8, 4), size=(8, 8))])
    assert math.isnan(s["pointing_object"][0].item()) and math.isnan(s["energy_object"][0].item())
    assert s["pointing_object"][1].item() == 1.0  # the boxed image is still scored


def test_a_data_set_without_boxes_degrades_to_a_note():
    with pytest.warns(UserWarning, match="no boxes in this data set"):
        scores = score_heatmap_fn(lambda x, y: x.mean(1), _NoBoxes(), [0, 1, 2, 3], batch_size=3)
    assert all(math.isnan(v) for v in scores.values())


CUB100 = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data" / "cub100"


@pytest.mark.skipif(not CUB100.is_dir(), reason=f"real CUB subset not found at {CUB100} (../shared/data/cub100)")
def test_real_cub_subset_without_bounding_boxes_gives_a_note():
    from fgic.data import build_dataset
    from fgic.data.transforms import build_transform

    test = build_dataset(
        "cub", root=CUB100, split="test", transform=build_transform("plain", train=False, image_size=32)
    )
    with pytest.warns(UserWarning, match="no boxes in this data set"):
        scores = score_heatmap_fn(lambda x, y: x.mean(1), test, [0, 1, 2])
    assert math.isnan(scores["pointing_object"])


def test_box_iou_uses_the_largest_region_above_a_fifth_of_the_maximum():
    hm = torch.zeros(2, 8, 8)
    hm[0, 0:4, 4:8] = 1.0  # a block exactly on the object box (4, 0, 8, 4)
    hm[1, 0:4, 4:8] = 0.5  # the same block, weaker, ...
    hm[1, 7, 0] = 1.0  # ... and a one-pixel maximum: the largest region above 0.2 x max is still the block
    hm[1, 6, 6] = 0.1  # under the threshold: ignored
    parts = {"beak": (5, 0, 8, 3), "tail": (0, 5, 3, 8)}
    anns = [ann(obj=(4, 0, 8, 4), parts=parts, disc=["beak"]), ann(obj=(0, 0, 8, 8), parts=parts, disc=["tail"])]
    s = localisation_scores(hm, anns)
    assert s["iou_object"].tolist() == pytest.approx([1.0, 16 / 64])
    assert s["iou_part"][0].item() == pytest.approx(9 / 16)  # beak 3 x 3 inside the 4 x 4 box
    assert s["iou_part"][1].item() == 0.0  # the tail does not meet the block
    no_obj = localisation_scores(hm[:1], [ann(obj=None)])
    assert math.isnan(no_obj["iou_object"].item()) and math.isnan(no_obj["iou_part"].item())
