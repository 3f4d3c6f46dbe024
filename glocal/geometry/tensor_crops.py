"""Crop + resize + normalise on tensors: the model inputs of many boxes of one image, equal to the
PIL path's (``image.crop(box)`` then the backbone's ``preprocess``).

Two implementations, picked by device:
- ``crop_pixels_batched`` (accelerators): every box of the image resized at once, two batched
  matmuls with Pillow's own weights (``glocal.geometry.resample``). On a GPU, one ``interpolate`` per box
  costs ~10 kernel launches, ~600 per image at N=60: host time that caps throughput whatever the
  GPU. Bit-identical to the PIL path in float64.
- ``crop_pixels_loop`` (CPU): one antialiased ``interpolate`` per box, within two 8-bit levels.
  On a CPU the arithmetic is the cost, and the dense matmuls do ~S/4 times more of it (measured
  in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from glocal.backbones.preprocess import centre_offset, to_rgb
from glocal.geometry.resample import pil_round, pil_weights, vertical_first

# Largest differences from the PIL path, in normalised pixel units (one 8-bit level is 1/255 over
# CLIP's smallest std, 0.261: 0.015). Measured on 40 real photos x 60 ABS boxes: the loop differs
# by up to two levels in 5.6e-4 of values, the batched path in float32 in 1.4e-5 of values (up to
# two levels: a first-pass level carried through the second pass), in float64 by nothing.
PIXEL_TOLERANCE = 0.031  # crop_pixels_loop
BATCHED_FLOAT32_TOLERANCE = 0.031
CROP_ELEMENTS = 1 << 23  # gathered pixels per batched resize (64 MB in float64): bounds memory on large photos
FAST_FP64_GPUS = {(6, 0), (7, 0), (8, 0), (9, 0), (10, 0)}  # compute capabilities with full-rate float64: P100, V100, A100, H100/H200, B200


def to_device(value, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A host array or tensor on ``device`` without stalling the host: on CUDA through pinned
    memory with ``non_blocking``. A plain copy from pageable memory synchronises the stream, so
    the host would wait for every queued forward before preparing the next image's crops."""
    tensor = torch.as_tensor(value)
    if dtype is not None and tensor.dtype != dtype:
        tensor = tensor.to(dtype)  # on the host: these are small (weights, indices)
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def to_host(features: torch.Tensor | None) -> torch.Tensor | None:
    """The one place features leave the model's device (looked up on this module at each call,
    so a test can swap it to run the engine on ``meta``)."""
    return None if features is None else features.cpu()


def full_precision(device: torch.device):
    """A context where autocast is off on ``device`` (resampling weights and 8-bit rounding need
    float32 or better); nothing to turn off where the device has no autocast."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def image_tensor(image: Image.Image) -> torch.Tensor:
    """PIL -> (3, H, W) uint8 (greyscale, palette and alpha become RGB)."""
    array = np.array(to_rgb(image), dtype=np.uint8)  # a writable copy
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def crop_pixels(image: torch.Tensor, boxes: torch.Tensor, spec, device=None, batched: bool | None = None) -> torch.Tensor:
    """(3, H, W) uint8 image and (n, 4) integer boxes (x0, y0, x1, y1) -> (n, 3, S, S) normalised
    model inputs: crop, resize the short side to ``spec.resize`` (long side with ``int()``, as the
    HF processor does; or to a square with ``spec.stretch``), centre crop ``spec.crop``,
    mean/std. Boxes beyond the image are zero-padded, as PIL's ``crop`` does. ``batched``
    (default: on any device but the CPU) picks the implementation."""
    device = torch.device(device) if device is not None else image.device
    if batched is None:
        batched = device.type != "cpu"
    return (crop_pixels_batched if batched else crop_pixels_loop)(image, boxes, spec, device)


def crop_pixels_loop(image: torch.Tensor, boxes, spec, device=None) -> torch.Tensor:
    """``crop_pixels`` one box at a time with ``interpolate`` (antialiased), one pass per axis in
    Pillow's order with 8-bit rounding after each, as Pillow does: within ``PIXEL_TOLERANCE`` of
    the PIL path (a float filter against Pillow's fixed point). The fastest CPU path: there the
    resize arithmetic, not the per-box calls, is the cost."""
    device = device or image.device
    img = image.to(device)
    box = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    w, h = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    sizes_w, sizes_h = _resized_sizes(w, h, spec)
    rows_first = vertical_first(w, h, sizes_w, sizes_h)
    mean = torch.tensor(spec.mean, device=device).view(3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(3, 1, 1)
    out = torch.empty(len(box), 3, spec.crop, spec.crop, device=device)
    mode = "bilinear" if spec.resample == Image.BILINEAR else "bicubic"  # SigLIP's processors resample bilinearly
    for i, (x0, y0, x1, y1) in enumerate(box.tolist()):
        region = _padded_region(img, x0, y0, x1, y1)
        new_w, new_h = int(sizes_w[i]), int(sizes_h[i])
        top, left = centre_offset(new_h, spec.crop, spec.crop_rounding), centre_offset(new_w, spec.crop, spec.crop_rounding)
        # rounding and clamping to 8 bits after each pass, as Pillow does (bicubic overshoots),
        # keeps high-contrast edges within tolerance
        resized = region[None].float()
        passes = [(h[i], new_w), (new_h, new_w)] if not rows_first[i] else [(new_h, w[i]), (new_h, new_w)]
        for target in passes:
            if tuple(resized.shape[2:]) != tuple(target):
                resized = F.interpolate(resized, size=tuple(int(t) for t in target), mode=mode, antialias=True, align_corners=False).round_().clamp_(0, 255)
        resized = resized[0, :, top : top + spec.crop, left : left + spec.crop]
        out[i] = (resized / 255.0 - mean) / std
    return out


def _padded_region(img: torch.Tensor, x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
    """img[:, y0:y1, x0:x1] with zeros wherever the box leaves the image (as PIL's ``crop``),
    including boxes entirely outside it."""
    _, height, width = img.shape
    cx0, cx1, cy0, cy1 = min(max(x0, 0), width), min(max(x1, 0), width), min(max(y0, 0), height), min(max(y1, 0), height)
    if cx1 <= cx0 or cy1 <= cy0:
        return img.new_zeros(img.shape[0], y1 - y0, x1 - x0)
    return F.pad(img[:, cy0:cy1, cx0:cx1], (cx0 - x0, x1 - cx1, cy0 - y0, y1 - cy1))


def crop_dtype(device: torch.device) -> torch.dtype:
    """float64 makes the fixed-point resize exact (bit-identical to Pillow). GPUs without
    full-rate float64 (consumer cards run it at 1/32-1/64) use float32: within two 8-bit levels,
    in about 1e-5 of values."""
    if device.type == "cpu" or (device.type == "cuda" and torch.cuda.get_device_capability(device) in FAST_FP64_GPUS):
        return torch.float64
    return torch.float32


def _resized_sizes(w: np.ndarray, h: np.ndarray, spec) -> tuple[np.ndarray, np.ndarray]:
    """Box sizes -> sizes after the resize: the short side to ``spec.resize`` with ``int()`` of the
    long side (as the HF processor computes it), or the fixed square with ``spec.stretch``."""
    side = np.full_like(w, spec.resize)
    if spec.stretch:
        return side, side
    long_w = np.floor(spec.resize * w / h).astype(np.int64)  # the same float64 division as Python's
    long_h = np.floor(spec.resize * h / w).astype(np.int64)
    portrait = w <= h
    return np.maximum(np.where(portrait, side, long_w), 1), np.maximum(np.where(portrait, long_h, side), 1)


def crop_pixels_batched(image: torch.Tensor, boxes, spec, device=None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``crop_pixels`` for all boxes of the image together: per axis one matrix of Pillow's
    weights per box (``glocal.geometry.resample``), two passes in Pillow's order, each rounded to 8 bits as
    Pillow rounds. In float64 (``crop_dtype``) the result is bit-identical to the PIL path. Box
    geometry is worked out with NumPy on the host (microseconds); the device runs one gather, two
    matmuls and the rounding per chunk of at most ``CROP_ELEMENTS`` gathered pixels."""
    device = torch.device(device) if device is not None else image.device
    dtype = dtype or crop_dtype(device)
    img = image.to(device)
    _, height, width = img.shape
    box = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    x0, y0, x1, y1 = box.T
    w, h = x1 - x0, y1 - y0
    if len(box) and (w.min() < 1 or h.min() < 1):
        raise ValueError(f"empty crop box in {box[(w < 1) | (h < 1)][:3].tolist()}: boxes need x1 > x0 and y1 > y0")
    new_w, new_h = _resized_sizes(w, h, spec)
    size = spec.crop
    left, top = centre_offset(new_w, size, spec.crop_rounding), centre_offset(new_h, size, spec.crop_rounding)
    # the part of each box inside the image, in box coordinates; padding contributes zeros
    cx0, cx1, cy0, cy1 = np.clip(x0, 0, width), np.clip(x1, 0, width), np.clip(y0, 0, height), np.clip(y1, 0, height)
    len_x, len_y = np.maximum(cx1 - cx0, 0), np.maximum(cy1 - cy0, 0)
    mean = to_device(np.array(spec.mean, dtype=np.float32), device).view(1, 3, 1, 1)
    std = to_device(np.array(spec.std, dtype=np.float32), device).view(1, 3, 1, 1)
    out = torch.empty(len(box), 3, size, size, device=device)
    rows_first = vertical_first(w, h, new_w, new_h)
    with full_precision(device):
        for group in (np.flatnonzero(~rows_first), np.flatnonzero(rows_first)):
            for take in _chunks(group, len_x, len_y, size):
                span_x, span_y = max(int(len_x[take].max()), 1), max(int(len_y[take].max()), 1)
                rows = np.minimum(cy0[take, None] + np.arange(span_y), max(height - 1, 0))
                cols = np.minimum(cx0[take, None] + np.arange(span_x), max(width - 1, 0))
                along_x = pil_weights(w[take], new_w[take], left[take], size, cx0[take] - x0[take], len_x[take], span_x, spec.resample)
                along_y = pil_weights(h[take], new_h[take], top[take], size, cy0[take] - y0[take], len_y[take], span_y, spec.resample)
                rows, cols = to_device(rows, device), to_device(cols, device)
                region = img[:, rows[:, :, None], cols[:, None, :]].transpose(0, 1).to(dtype)  # (c, 3, span_y, span_x)
                along_x = to_device(along_x, device, dtype).transpose(1, 2)[:, None]
                along_y = to_device(along_y, device, dtype)[:, None]
                if rows_first[take[0]]:
                    pixels = pil_round(pil_round(along_y @ region) @ along_x)
                else:
                    pixels = pil_round(along_y @ pil_round(region @ along_x))
                index = to_device(take, device) if len(take) < len(box) else slice(None)
                out[index] = (pixels.float() / 255.0 - mean) / std
    return out


def _chunks(group: np.ndarray, len_x: np.ndarray, len_y: np.ndarray, size: int) -> list[np.ndarray]:
    """``group`` (box indices) split into consecutive runs whose gathered pixels and first-pass
    output fit CROP_ELEMENTS."""
    chunks, begin, span_x, span_y = [], 0, 1, 1
    for i, (lx, ly) in enumerate(zip(len_x[group].tolist(), len_y[group].tolist())):
        sx, sy = max(span_x, lx), max(span_y, ly)
        if i > begin and (i - begin + 1) * 3 * sy * (sx + size) > CROP_ELEMENTS:
            chunks.append(group[begin:i])
            begin, sx, sy = i, max(lx, 1), max(ly, 1)
        span_x, span_y = sx, sy
    if begin < len(group):
        chunks.append(group[begin:])
    return chunks
