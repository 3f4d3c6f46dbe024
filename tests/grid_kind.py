"""A test-only crop kind and the method that uses it, in one module and nothing else: a fixed
grid of cells x cells crops, scored as the mean of the crops' CLIP scores. Importing it registers
both (tests/test_crop_kinds.py imports it, runs it through `glocal evaluate`, then unregisters)."""

from dataclasses import dataclass

import torch

from glocal.kinds.registry import register_crop_kind
from glocal.methods.registry import register_method


@dataclass(frozen=True)
class GridConfig:
    cells: int = 3  # crops per side: cells * cells crops per image


@register_crop_kind("grid", config=GridConfig)
def grid_boxes(width: int, height: int, config: GridConfig, image_id: str) -> torch.Tensor:
    """The image cut into cells x cells equal crops (integer edges), row by row."""
    xs = [width * k // config.cells for k in range(config.cells + 1)]
    ys = [height * k // config.cells for k in range(config.cells + 1)]
    return torch.tensor([[xs[c], ys[r], xs[c + 1], ys[r + 1]] for r in range(config.cells) for c in range(config.cells)])


@register_method("grid_mean", image=("full", "grid"), text=("prompts",), config=GridConfig)
def grid_mean_scores(features, bank, config: GridConfig) -> torch.Tensor:
    """score(c) = mean over the grid crops k of cos(f_k, t_c). grid (B, cells^2, D), prompts (C, D) -> (B, C)."""
    return (features.need("grid") @ bank.need("prompts").T).mean(1)
