"""Tensor crops against Pillow: the batched path bit for bit (float64), the per-box loop and the
float32 batched path within their stated tolerances; Pillow's weights and pass order by hand;
the batched feature-window crop against the per-window one."""

import numpy as np
import pytest
import torch
from PIL import Image

from glocal.geometry import tensor_crops
from glocal.backbones.preprocess import PreprocessSpec, clip_preprocess
from glocal.config import ABSConfig
from glocal.geometry.feature_views import crop_windows, crop_windows_batched
from glocal.geometry.plans import abs_plan
from glocal.geometry.resample import pil_round, pil_weights, torch_bicubic_weights, vertical_first
from glocal.geometry.tensor_crops import BATCHED_FLOAT32_TOLERANCE, PIXEL_TOLERANCE, crop_pixels_batched, crop_pixels_loop, image_tensor

SPECS = {
    "clip": PreprocessSpec(resize=56, crop=56),
    "resize-above-crop": PreprocessSpec(resize=64, crop=56),
    "siglip-stretch-bilinear": PreprocessSpec(resize=56, crop=56, stretch=True, resample=Image.BILINEAR),
    # torchvision's centre-crop rounding (the official forms)
    "clip-round": PreprocessSpec(resize=56, crop=56, crop_rounding="round"),
    "resize-above-crop-round": PreprocessSpec(resize=64, crop=49, crop_rounding="round"),
}


def _noise(w, h, mode="RGB", seed=0):
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    return im.convert(mode) if mode != "RGB" else im


def _cases():
    """Odd landscape and portrait, greyscale, smaller than the crop, a thin strip; boxes inside,
    padded past every edge, entirely outside, and tall ones Pillow resizes rows first."""
    for k, (w, h, mode) in enumerate([(97, 61, "RGB"), (45, 130, "RGB"), (80, 80, "L"), (9, 7, "RGB"), (300, 20, "RGB")]):
        im = _noise(w, h, mode, seed=k)
        boxes = [[0, 0, w, h], [w // 4, h // 5, w - 1, h - 2], [1, 1, max(2, w // 3), max(2, h // 2)], [-3, -2, w + 4, h + 1],
                 [w - 2, h - 2, w + 30, h + 40], [-50, -50, -10, -10], [0, 0, max(1, w // 4), h]]
        yield im, torch.tensor(boxes)


def _reference(im, boxes, spec):
    rgb = im.convert("RGB")
    return torch.stack([clip_preprocess(rgb.crop(tuple(b)), spec) for b in boxes.tolist()])


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_batched_crops_are_bit_identical_to_pil(spec_name):
    spec = SPECS[spec_name]
    for im, boxes in _cases():
        assert torch.equal(crop_pixels_batched(image_tensor(im), boxes, spec), _reference(im, boxes, spec)), im.size


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_loop_and_float32_crops_within_their_tolerances(spec_name):
    spec = SPECS[spec_name]
    loop, single = [], []
    for im, boxes in _cases():
        reference = _reference(im, boxes, spec)
        loop.append((crop_pixels_loop(image_tensor(im), boxes, spec) - reference).abs().flatten())
        single.append((crop_pixels_batched(image_tensor(im), boxes, spec, dtype=torch.float32) - reference).abs().flatten())
    loop, single = torch.cat(loop), torch.cat(single)
    assert loop.max() <= PIXEL_TOLERANCE and single.max() <= BATCHED_FLOAT32_TOLERANCE
    assert loop.mean() < 1e-3 and loop.max() > 0  # a float filter, not Pillow under another name


def test_real_photos_abs_boxes(shared):
    """Real photos (one greyscale among them) with 60 ABS boxes each at CLIP's 224 px."""
    from glocal.data.images import open_image, read_dataset

    records, _ = read_dataset(shared / "images" / "imagenet-sample")
    spec, config = PreprocessSpec(resize=224, crop=224), ABSConfig(n_crops=60)
    for k, record in enumerate(records[:: len(records) // 4][:4]):
        im = open_image(record.path)
        plan = abs_plan(torch.rand(14, 14, generator=torch.Generator().manual_seed(k)), *im.size, 14, config, record.image_id)
        reference = _reference(im, plan.raw_boxes, spec)
        assert torch.equal(crop_pixels_batched(image_tensor(im), plan.raw_boxes, spec), reference), record.image_id
        assert (crop_pixels_loop(image_tensor(im), plan.raw_boxes, spec) - reference).abs().max() <= PIXEL_TOLERANCE


def test_chunking_does_not_change_crops(monkeypatch):
    im, boxes = next(_cases())
    spec = SPECS["clip"]
    whole = crop_pixels_batched(image_tensor(im), boxes, spec)
    monkeypatch.setattr(tensor_crops, "CROP_ELEMENTS", 3 * 70 * (100 + 56))  # about one box per chunk
    assert len(tensor_crops._chunks(np.arange(len(boxes)), np.full(len(boxes), 97), np.full(len(boxes), 61), 56)) >= 4
    assert torch.equal(crop_pixels_batched(image_tensor(im), boxes, spec), whole)


def test_empty_box_is_refused_with_the_box():
    with pytest.raises(ValueError, match=r"empty crop box in \[\[3, 3, 3, 9\]\]"):
        crop_pixels_batched(image_tensor(_noise(20, 20)), torch.tensor([[0, 0, 5, 5], [3, 3, 3, 9]]), SPECS["clip"])


def test_pil_weights_by_hand():
    """4 -> 2 bilinear: scale 2 widens the triangle to support 2; centres at 1.0 and 3.0. Row 0
    takes pixels 0..2 with triangle values 0.75, 0.75, 0.25 (normalised: 3/7, 3/7, 1/7); row 1
    pixels 1..3 with 0.25, 0.75, 0.75."""
    one = lambda n: np.array([n])  # noqa: E731
    w = pil_weights(one(4), one(2), one(0), 2, one(0), one(4), 4, Image.BILINEAR)[0]
    assert np.allclose(w, [[3 / 7, 3 / 7, 1 / 7, 0], [0, 1 / 7, 3 / 7, 3 / 7]], atol=1e-6)
    row = np.array([[0, 70, 140, 210]], dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(row).resize((2, 1), Image.BILINEAR))
    assert pillow.tolist() == [[50, 160]] == pil_round(row.astype(np.float64) @ w.T).tolist()  # (210 + 140) / 7, (70 + 420 + 630) / 7
    # a region starting inside the crop (padding before it) drops the padded columns
    shifted = pil_weights(one(4), one(2), one(0), 2, one(1), one(3), 3, Image.BILINEAR)[0]
    assert np.allclose(shifted, w[:, 1:], atol=1e-12)


def test_pass_order_follows_pillow():
    """Shapes where the two pass orders round differently: Pillow's choice is reproduced."""
    rng = np.random.default_rng(3)
    sizes = [((45, 130), (56, 56)), ((130, 45), (56, 56)), ((45, 130), (20, 60)), ((169, 100), (56, 27)), ((10, 102), (113, 158))]
    for (w, h), (ow, oh) in sizes:
        pixels = rng.integers(0, 256, (h, w), dtype=np.uint8)
        expected = np.asarray(Image.fromarray(pixels).resize((ow, oh), Image.BICUBIC), dtype=np.float64)
        one = lambda n: np.array([n])  # noqa: E731
        along_x = pil_weights(one(w), one(ow), one(0), ow, one(0), one(w), w)[0]
        along_y = pil_weights(one(h), one(oh), one(0), oh, one(0), one(h), h)[0]
        rows_first = vertical_first(one(w), one(h), one(ow), one(oh))[0]
        x = pixels.astype(np.float64)
        ours = pil_round(pil_round(along_y @ x) @ along_x.T) if rows_first else pil_round(along_y @ pil_round(x @ along_x.T))
        assert np.array_equal(ours, expected), (w, h, ow, oh, rows_first)


def test_torch_bicubic_weights_match_interpolate():
    """Each row of the weights applied to a ramp equals interpolate on the window."""
    values = torch.arange(10, dtype=torch.float32) ** 2
    for start, length in [(0, 10), (3, 4), (7, 3), (2, 1)]:
        weights = torch.from_numpy(torch_bicubic_weights(np.array([start]), np.array([length]), 10, 10))[0]
        window = values[start : start + length].view(1, 1, 1, -1)
        expected = torch.nn.functional.interpolate(window, size=(1, 10), mode="bicubic", align_corners=False).flatten()
        assert torch.allclose(weights @ values, expected, atol=1e-4), (start, length)


@pytest.mark.parametrize("grid,prefix", [(14, 1), (7, 1), (5, 0), (16, 4)])
def test_batched_windows_equal_per_window_crop(grid, prefix):
    plan = abs_plan(torch.rand(14, 14, generator=torch.Generator().manual_seed(grid)), 400, 300, grid, ABSConfig(n_crops=12), "w")
    windows = torch.cat([plan.windows, torch.tensor([[0, 0, grid, grid], [grid - 1, grid - 1, grid, grid]])])
    tokens = torch.randn(prefix + grid * grid, 24, generator=torch.Generator().manual_seed(1))
    expected, _ = crop_windows(tokens, windows, prefix, grid)
    ours, bias = crop_windows_batched(tokens, windows, prefix, grid)
    assert bias is None and ours.shape == expected.shape
    assert torch.allclose(ours, expected, atol=2e-5)
    assert torch.equal(ours[-2, prefix:], tokens[prefix:])  # the full-grid window is the identity


def test_batched_windows_stay_float32_under_autocast():
    """The engine runs under bf16 autocast on GPUs; the window resize must not drop to bf16 (the
    per-window interpolate it replaces never did). CPU autocast to bf16 shows the same."""
    plan = abs_plan(torch.rand(14, 14, generator=torch.Generator().manual_seed(0)), 400, 300, 14, ABSConfig(n_crops=8), "w")
    tokens = torch.randn(1 + 14 * 14, 24, generator=torch.Generator().manual_seed(1))
    expected, _ = crop_windows(tokens, plan.windows, 1, 14)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, _ = crop_windows_batched(tokens, plan.windows, 1, 14)
    assert ours.dtype == torch.float32 and torch.allclose(ours, expected, atol=2e-5)


def test_to_device_converts_on_the_host_and_keeps_values():
    weights = np.array([[0.25, 0.5], [1.0, -0.125]])
    moved = tensor_crops.to_device(weights, torch.device("cpu"), torch.float32)
    assert moved.dtype == torch.float32 and moved.tolist() == [[0.25, 0.5], [1.0, -0.125]]
    index = tensor_crops.to_device(np.array([3, 1]), torch.device("cpu"))
    assert index.dtype == torch.int64 and index.tolist() == [3, 1]
