"""Per-image crop plans: the boxes and windows a method will encode, seeded by (seed, image id).

Pure geometry (no model): the extractor and the fast engine both encode exactly these plans, so
their features can be compared box for box.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glocal.config import ABSConfig, LGCAConfig, ViewsConfig, WCAConfig
from glocal.geometry.crops import (
    abs_raw_boxes,
    attention_to_grid,
    boxes_to_windows,
    covered_region,
    patch_pixel_centres,
    random_resized_box,
    random_square_boxes,
    sample_centres,
    square_windows,
)
from glocal.seeding import generator_for


@dataclass(frozen=True)
class ABSPlan:
    centres: torch.Tensor  # (N,) indices into the flattened attention map
    raw_boxes: torch.Tensor  # (N, 4) pixel boxes in the original image
    windows: torch.Tensor  # (N, 4) cell boxes on the backbone's g x g token grid


def abs_plan(
    attention: torch.Tensor,
    width: int,
    height: int,
    grid: int,
    config: ABSConfig,
    image_id: str,
    frame: str = "stretch",
    input_stretch: bool = False,
    input_crop_fraction: float = 1.0,
) -> ABSPlan:
    """Raw boxes and feature windows for one image from its ``(g_a, g_a)`` attention map.
    ``frame``: how the attention map covers the image; ``input_stretch`` /
    ``input_crop_fraction``: how the backbone's token grid does (its preprocessing), which the
    paper pairing maps each raw box through."""
    g_a = attention.shape[-1]
    centres = sample_centres(
        attention, config.n_crops, config.top_k, config.centre_temperature,
        generator_for(config.seed, image_id, "abs-centres"),
    )
    cx, cy = patch_pixel_centres(centres, g_a, width, height, frame)
    raw = abs_raw_boxes(
        cx, cy, width, height, config.alpha, config.beta,
        generator_for(config.seed, image_id, "abs-raw-size"),
    )
    if config.pairing == "paper":
        windows = boxes_to_windows(raw, width, height, grid, covered_region(width, height, input_stretch, input_crop_fraction))
    else:
        feature_centres = sample_centres(
            attention, config.n_crops, config.feature_top_k or config.top_k, config.centre_temperature,
            generator_for(config.seed, image_id, "abs-feature-centres"),
        )
        rows, cols = attention_to_grid(feature_centres, g_a, grid, config.grid_map)
        windows = square_windows(
            rows, cols, grid, config.window_min, config.window_max,
            generator_for(config.seed, image_id, "abs-feature-size"),
        )
    return ABSPlan(centres, raw, windows)


def wca_boxes(width: int, height: int, config: WCAConfig | LGCAConfig, image_id: str, stream: str = "wca") -> torch.Tensor:
    """WCA (and LGCA step 0) random square crops for one image."""
    return random_square_boxes(
        width, height, config.n_crops, config.min_scale, config.max_scale,
        generator_for(config.seed, image_id, stream),
    )


def iou_filter(boxes: torch.Tensor, threshold: float, max_kept: int) -> torch.Tensor:
    """(N, 4) boxes in drawing order -> indices of the kept ones, BiFTA's
    ``filter_augmented_samples``: a box is kept when its IoU with every kept box is <= threshold;
    the filter stops once ``max_kept`` are kept."""
    kept: list[int] = []
    b = boxes.double()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    for i in range(len(b)):
        if kept:
            k = torch.tensor(kept)
            w = (torch.minimum(b[k, 2], b[i, 2]) - torch.maximum(b[k, 0], b[i, 0])).clamp(min=0)
            h = (torch.minimum(b[k, 3], b[i, 3]) - torch.maximum(b[k, 1], b[i, 1])).clamp(min=0)
            inter = w * h
            union = area[k] + area[i] - inter
            iou = torch.where(union > 0, inter / union, torch.zeros_like(inter))
            if iou.max() > threshold:
                continue
        kept.append(i)
        if len(kept) >= max_kept:
            break
    return torch.tensor(kept, dtype=torch.int64)


def bifta_boxes(width: int, height: int, config, image_id: str) -> torch.Tensor:
    """BiFTA's kept crops of one image: ``config.n_crops`` WCA squares from the (seed, image id,
    "bifta") stream, IoU-filtered (``iou_filter``) -> (K, 4), K <= max_kept."""
    drawn = random_square_boxes(width, height, config.n_crops, config.min_scale, config.max_scale,
                                generator_for(config.seed, image_id, "bifta"))
    return drawn[iou_filter(drawn, config.iou_threshold, config.max_kept)]


def view_plan(width: int, height: int, config: ViewsConfig, image_id: str) -> torch.Tensor:
    """ZERO's / MTA's augmented views of one image: (N, 5) rows [x0, y0, x1, y1, flipped], each a
    ``RandomResizedCrop`` box and a ``RandomHorizontalFlip`` draw, in torchvision's order (box,
    then flip), from the (seed, image id, "views") stream."""
    generator = generator_for(config.seed, image_id, "views")
    rows = []
    for _ in range(config.n_crops):
        box = random_resized_box(width, height, (config.min_scale, config.max_scale), (config.min_ratio, config.max_ratio), generator)
        flipped = int(torch.rand(1, generator=generator, dtype=torch.float64).item() < config.flip)
        rows.append((*box, flipped))
    return torch.tensor(rows, dtype=torch.int64)


def input_frame(spec) -> dict:
    """``abs_plan``'s view of a backbone's preprocessing (a ``PreprocessSpec``)."""
    return {"input_stretch": spec.stretch, "input_crop_fraction": spec.crop / spec.resize}
