"""The only real vision weights we have: DINOv2 ViT-S/14 on real ImageNet photos."""

import csv

import numpy as np
import pytest
import torch

from glocal.encode.attention import DinoAttention
from glocal.config import ABSConfig
from glocal.data.images import open_image
from glocal.geometry.plans import abs_plan

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photos(shared):
    folder = shared / "images" / "imagenet-sample"
    rows = list(csv.DictReader(open(folder / "labels.csv")))
    chosen, grey = [], None
    for row in rows:
        image = open_image(folder / row["file"])
        pixels = np.asarray(image).astype(int)
        # the sample's greyscale photos are RGB JPEGs with (near-)equal channels
        if grey is None and np.abs(pixels[..., 0] - pixels[..., 1]).max() <= 2 and np.abs(pixels[..., 1] - pixels[..., 2]).max() <= 2:
            grey = (row["file"], image.convert("L"))  # and feed it as a true 1-channel image
        if len(chosen) < 4 and image.width != image.height:
            chosen.append((row["file"], image))
        if grey and len(chosen) >= 4:
            break
    assert grey is not None, "the sample has greyscale photos"
    return chosen + [grey]


@pytest.fixture(scope="module")
def dinov2(shared):
    return DinoAttention.from_pretrained(str(shared / "models" / "dinov2-small-imgfocus"))


def test_dinov2_maps_are_16x16_and_boxes_inside(photos, dinov2):
    images = [im for _, im in photos]
    maps = dinov2.maps(images)
    assert dinov2.grid == 16 and maps.shape == (len(images), 16, 16)
    assert torch.isfinite(maps).all() and (maps >= 0).all()
    for (name, image), attention in zip(photos, maps):
        for pairing in ("paper", "code"):
            plan = abs_plan(attention, image.width, image.height, 14, ABSConfig(pairing=pairing), name)
            b = plan.raw_boxes
            assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all(), name
            assert (b[:, 2] <= image.width).all() and (b[:, 3] <= image.height).all(), name
            assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all()
            assert (plan.windows[:, :2] >= 0).all() and (plan.windows[:, 2:] <= 14).all()


def test_dinov2_attention_is_peaked_not_flat(photos, dinov2):
    maps = dinov2.maps([im for _, im in photos])
    flat = maps.flatten(1)
    top20 = flat.topk(20, dim=1).values.sum(1) / flat.sum(1)
    assert (top20 > 20 / 256 * 1.5).all()  # top-20 of 256 patches hold well over their share
