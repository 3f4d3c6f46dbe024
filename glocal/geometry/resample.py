"""Resizing as matrix products: one weight matrix per axis and crop, so the crops of an image (boxes
of different sizes) resize together in two batched matmuls instead of one ``interpolate`` call per
box. On a GPU the per-box loop's kernel launches, not its arithmetic, set the pace (see
benchmarks/RESULTS.md).

- ``pil_weights``: Pillow's separable resampling (``ImagingResample``): the filter's support
  widened by the downscale factor (antialiasing), each output's taps normalised to sum 1, then
  quantised to 22-bit fixed point. Applied to 8-bit pixels in float64 and rounded as Pillow rounds,
  the result is bit-identical to ``Image.resize``.
- ``torch_bicubic_weights``: ``F.interpolate(mode="bicubic", align_corners=False)`` without
  antialias (A = -0.75, borders clamped), for upsampling token windows.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from PIL import Image

PIL_PRECISION_BITS = 22  # Pillow's fixed point for 8-bit images: 32 - 8 - 2
PIL_BICUBIC_A = -0.5
TORCH_BICUBIC_A = -0.75


def _pil_bicubic(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    a = PIL_BICUBIC_A
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _pil_bilinear(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


PIL_FILTERS = {Image.BICUBIC: (2.0, _pil_bicubic), Image.BILINEAR: (1.0, _pil_bilinear)}  # support, kernel


def _scatter_rows(index: np.ndarray, values: np.ndarray, length: int) -> np.ndarray:
    """(n, m, taps) column indices and values -> (n, m, length) dense rows; indices outside
    0..length-1 are dropped (the taps of a row hit distinct columns)."""
    n, m, taps = index.shape
    out = np.zeros((n, m, length + 1))
    out[np.arange(n)[:, None, None], np.arange(m)[None, :, None], np.where((index >= 0) & (index < length), index, length)] = values
    return out[..., :length]


def pil_weights(in_size, out_size, out_start, count: int, region_start, region_len, length: int, resample: int = Image.BICUBIC) -> np.ndarray:
    """Pillow's resize weights along one axis for n crops, as (n, count, length) float64 matrices.

    Crop i resizes ``in_size[i]`` input pixels to ``out_size[i]``; only outputs
    ``out_start[i] .. out_start[i] + count`` are kept (the centre crop). Columns are the crop's
    pixels ``region_start[i] .. region_start[i] + region_len[i]`` (crop-local coordinates; pixels
    outside that region, e.g. zero padding, drop out since they contribute 0); columns past
    ``region_len[i]`` are zero. Entries are Pillow's fixed-point coefficients times 2**-22 (exact
    in float64). Arguments are (n,) integer arrays."""
    if resample not in PIL_FILTERS:
        raise ValueError(f"resample {resample} is not supported; use Image.BICUBIC or Image.BILINEAR")
    base_support, kernel = PIL_FILTERS[resample]
    in_size, out_size = np.asarray(in_size, np.float64), np.asarray(out_size, np.float64)
    scale = in_size / out_size
    filterscale = np.maximum(scale, 1.0)
    support = base_support * filterscale
    inv = (1.0 / filterscale)[:, None, None]  # Pillow multiplies by the reciprocal
    centre = (np.asarray(out_start, np.float64)[:, None] + np.arange(count) + 0.5) * scale[:, None]  # (n, count)
    first = np.maximum(np.floor(centre - support[:, None] + 0.5), 0)  # C's int() of a value >= -1: the same after the max
    stop = np.minimum(np.floor(centre + support[:, None] + 0.5), in_size[:, None])
    taps = 2 * math.ceil(float(support.max(initial=1.0))) + 1
    position = first[..., None] + np.arange(taps)  # (n, count, taps), crop-local
    weight = np.where(position < stop[..., None], kernel((position - centre[..., None] + 0.5) * inv), 0.0)
    total = weight.sum(-1, keepdims=True)
    weight = np.divide(weight, total, out=weight.copy(), where=total != 0)
    fixed = np.sign(weight) * np.floor(np.abs(weight) * 2.0**PIL_PRECISION_BITS + 0.5)  # C's (int)(w * 2^22 +- 0.5)
    column = position - np.asarray(region_start, np.float64)[:, None, None]
    column = np.where(column < np.asarray(region_len)[:, None, None], column, -1).astype(np.int64)
    return _scatter_rows(column, fixed * 2.0**-PIL_PRECISION_BITS, length)


def vertical_first(w: np.ndarray, h: np.ndarray, new_w: np.ndarray, new_h: np.ndarray) -> np.ndarray:
    """Which resizes Pillow runs vertical pass first: recent Pillow (13 here) does when the height
    shrinks by more than twice as many pixels as the width; older ones always run horizontal
    first. The order changes the 8-bit rounding between passes, so it is probed once on the
    installed Pillow."""
    shrink = h - new_h
    rule = (shrink > 0) & (shrink > 2 * (w - new_w))
    return rule if _pillow_orders_passes() else np.zeros_like(rule)


@functools.cache
def _pillow_orders_passes() -> bool:
    """Resize a fixed 8 x 40 noise image to 10 x 10 (height shrinks, width grows) with Pillow and
    see which pass order reproduces it."""
    pixels = np.random.default_rng(0).integers(0, 256, (40, 8), dtype=np.uint8)
    resized = np.asarray(Image.fromarray(pixels).resize((10, 10), Image.BICUBIC), dtype=np.float64)
    one = lambda n: np.array([n])  # noqa: E731
    along_x = pil_weights(one(8), one(10), one(0), 10, one(0), one(8), 8)[0]
    along_y = pil_weights(one(40), one(10), one(0), 10, one(0), one(40), 40)[0]
    return bool(np.array_equal(pil_round(pil_round(along_y @ pixels) @ along_x.T), resized))


def pil_round(values):
    """Pillow's rounding of a pass's fixed-point sum to 8 bits: floor(x + 1/2), clipped to 0..255
    (tensors or arrays)."""
    if isinstance(values, np.ndarray):
        return np.clip(np.floor(values + 0.5), 0, 255)
    return torch.floor(values + 0.5).clamp_(0, 255)


def torch_bicubic_weights(start: np.ndarray, length: np.ndarray, out_size: int, size: int) -> np.ndarray:
    """(n, out_size, size) float32: row b of matrix i holds the weights ``F.interpolate(bicubic,
    align_corners=False)`` gives input positions ``start[i] .. start[i] + length[i]`` (of an axis of
    ``size``) for output b, taps clamped at the window's borders as interpolate clamps them."""
    a = np.float32(TORCH_BICUBIC_A)
    length = np.asarray(length)
    scale = length.astype(np.float32) / np.float32(out_size)  # interpolate's scale, in float32 as it computes it
    real = scale[:, None] * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    base = np.floor(real)
    t = real - base

    def near(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    coeffs = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)  # taps at base-1 .. base+2
    local = np.minimum(np.maximum(base[..., None] + np.arange(-1, 3), 0), (length - 1)[:, None, None])
    index = (local + np.asarray(start)[:, None, None]).astype(np.int64)
    out = np.zeros((len(length), out_size, size), dtype=np.float32)
    np.add.at(out, (np.arange(len(length))[:, None, None], np.arange(out_size)[None, :, None], index), coeffs)  # clamped taps coincide
    return out
