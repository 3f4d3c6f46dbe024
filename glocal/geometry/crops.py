"""Crop geometry, exactly as ``docs/methods.md`` describes, as pure tensor functions.

Boxes are ``(N, 4)`` int64 tensors ``[x0, y0, x1, y1]`` in pixels of the ORIGINAL image, with
``x1``/``y1`` exclusive (PIL's ``crop`` convention). Feature windows use the same layout in cells
of a ``g x g`` token grid. Every random draw takes an explicit ``torch.Generator`` (see
``glocal.seeding``): same seed and image id, same boxes.
"""

from __future__ import annotations

import math

import torch

from glocal.seeding import randint_inclusive

# --------------------------------------------------------------------------- ABS centres


def sample_centres(
    attention: torch.Tensor, n: int, k: int, temperature: float, generator: torch.Generator
) -> torch.Tensor:
    """Draw ``n`` patch indices (into the flattened ``(g_a, g_a)`` map) with replacement.

    Top-k patches, probabilities ``softmax(values / temperature)``, ``torch.multinomial``.
    Ties in the map are broken by a seeded random order, so a constant map (the "uniform"
    attention source) selects ``k`` random patches rather than the first ``k``.
    """
    values = attention.reshape(-1).float()
    k = min(k, values.numel())
    order = torch.randperm(values.numel(), generator=generator)
    ranked = torch.sort(values[order], descending=True, stable=True).indices[:k]
    top_idx = order[ranked]
    probs = torch.softmax(values[top_idx] / temperature, dim=0)
    picks = torch.multinomial(probs, n, replacement=True, generator=generator)
    return top_idx[picks]


# --------------------------------------------------------------------------- ABS raw space


def patch_pixel_centres(
    idx: torch.Tensor, grid: int, width: int, height: int, frame: str = "stretch"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel centre in the original image of each attention patch index.

    ``frame="stretch"``: the map covers the whole image resized to a square (DINO); this is the
    official formula ``x_min = int(j*W/g)``, ``x_max = min(x_min + int(W/g), W)``, centre = the
    integer midpoint. ``frame="center_crop"``: the map covers CLIP's centre crop (the short side,
    centred), e.g. CLIP's own attention.
    """
    rows = (idx // grid).tolist()
    cols = (idx % grid).tolist()
    if frame == "stretch":
        ox, oy, span_w, span_h = 0, 0, width, height
    elif frame == "center_crop":
        side = min(width, height)
        ox, oy, span_w, span_h = (width - side) // 2, (height - side) // 2, side, side
    else:
        raise ValueError(f"unknown attention frame {frame!r}; expected 'stretch' or 'center_crop'")
    cx, cy = [], []
    for i, j in zip(rows, cols):
        x_min = int(j * span_w / grid)
        x_max = min(x_min + int(span_w / grid), span_w)
        y_min = int(i * span_h / grid)
        y_max = min(y_min + int(span_h / grid), span_h)
        cx.append(ox + (x_min + x_max) // 2)
        cy.append(oy + (y_min + y_max) // 2)
    return torch.tensor(cx, dtype=torch.long), torch.tensor(cy, dtype=torch.long)


def abs_raw_boxes(
    cx: torch.Tensor,
    cy: torch.Tensor,
    width: int,
    height: int,
    alpha: float,
    beta: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """ABS raw-space boxes around pixel centres: width in ``[int(aW), int(bW)]`` and height in
    ``[int(aH), int(bH)]`` drawn independently (not square), box
    ``[cx - cw//2, cy - ch//2, cx + cw//2, cy + ch//2]`` clamped to the image (not shifted)."""
    n = cx.numel()
    cw = randint_inclusive(int(alpha * width), int(beta * width), n, generator)
    ch = randint_inclusive(int(alpha * height), int(beta * height), n, generator)
    boxes = torch.stack([cx - cw // 2, cy - ch // 2, cx + cw // 2, cy + ch // 2], dim=1)
    return clamp_boxes(boxes, width, height)


def clamp_boxes(boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Clamp to the image; a box that collapses keeps at least one pixel (tiny images)."""
    x0 = boxes[:, 0].clamp(0, width - 1)
    y0 = boxes[:, 1].clamp(0, height - 1)
    x1 = torch.maximum(boxes[:, 2].clamp(0, width), x0 + 1)
    y1 = torch.maximum(boxes[:, 3].clamp(0, height), y0 + 1)
    return torch.stack([x0, y0, x1, y1], dim=1).long()


# --------------------------------------------------------------------------- ABS feature space


def square_windows(
    centre_rows: torch.Tensor,
    centre_cols: torch.Tensor,
    grid: int,
    window_min: float,
    window_max: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Square windows on the ``grid x grid`` token grid (the official code's feature crops):
    side ``s = randint(int(0.6g), int(0.9g))``, ``half = s // 2``, cells
    ``[max(0, c - half), min(g, c + half + 1))`` on both axes."""
    n = centre_rows.numel()
    side = randint_inclusive(int(window_min * grid), int(window_max * grid), n, generator)
    half = side // 2
    x0 = (centre_cols - half).clamp(min=0)
    x1 = (centre_cols + half + 1).clamp(max=grid)
    y0 = (centre_rows - half).clamp(min=0)
    y1 = (centre_rows + half + 1).clamp(max=grid)
    return torch.stack([x0, y0, x1, y1], dim=1).long()


def attention_to_grid(idx: torch.Tensor, attention_grid: int, grid: int, rule: str = "official") -> tuple[torch.Tensor, torch.Tensor]:
    """Row/col on a ``grid`` token grid of each attention patch index, treating both grids as
    covering the same square (the official code's assumption). ``rule="official"``: the official
    ``map_index_14_to_16`` (and ``_14_to_7``), ``row * g // g_a``; ``rule="centre"``: the cell that
    holds the patch's centre, ``floor((row + 0.5) * g / g_a)``. Both are the identity when the grids
    agree and halve on 14 -> 7; on 14 -> 16 rows 3-6 and 10-13 land one cell apart."""
    rows, cols = idx // attention_grid, idx % attention_grid
    if rule == "official":
        return (rows * grid // attention_grid).clamp(0, grid - 1), (cols * grid // attention_grid).clamp(0, grid - 1)
    if rule != "centre":
        raise ValueError(f"unknown grid map {rule!r}; expected 'official' or 'centre'")
    return (((rows.double() + 0.5) * grid / attention_grid).floor().long().clamp(0, grid - 1),
            ((cols.double() + 0.5) * grid / attention_grid).floor().long().clamp(0, grid - 1))


def covered_region(width: int, height: int, stretch: bool = False, crop_fraction: float = 1.0) -> tuple[float, float, float, float]:
    """(x0, y0, w, h): the part of the original image a backbone's token grid covers. CLIP-style
    preprocessing resizes the short side and crops the centre square (``crop_fraction`` = crop /
    resize of it: 1 for CLIP's 224/224); a stretching one (SigLIP, ALIGN) resizes the whole image
    to a square, aspect not kept, then crops the centre ``crop_fraction`` of each side."""
    if stretch:
        w, h = width * crop_fraction, height * crop_fraction
    else:
        w = h = min(width, height) * crop_fraction
    return (width - w) / 2.0, (height - h) / 2.0, w, h


def boxes_to_windows(boxes: torch.Tensor, width: int, height: int, grid: int,
                     region: tuple[float, float, float, float] | None = None) -> torch.Tensor:
    """Map pixel boxes of the original image onto the backbone's ``g x g`` token grid through the
    region its tokens cover (``covered_region``; default CLIP's centre square). Each box keeps its
    centre and size in that frame, edges rounded half up; the part outside is clipped; a box
    entirely outside keeps the nearest cell.
    """
    ox, oy, cw, ch = region or covered_region(width, height)
    b = boxes.double()
    gx0, gx1 = (b[:, 0] - ox) * grid / cw, (b[:, 2] - ox) * grid / cw
    gy0, gy1 = (b[:, 1] - oy) * grid / ch, (b[:, 3] - oy) * grid / ch
    x0 = torch.floor(gx0 + 0.5).long().clamp(0, grid - 1)
    y0 = torch.floor(gy0 + 0.5).long().clamp(0, grid - 1)
    x1 = torch.maximum(torch.floor(gx1 + 0.5).long().clamp(0, grid), x0 + 1)
    y1 = torch.maximum(torch.floor(gy1 + 0.5).long().clamp(0, grid), y0 + 1)
    return torch.stack([x0, y0, x1, y1], dim=1)


# --------------------------------------------------------------------------- WCA and LGCA


def random_square_boxes(
    width: int, height: int, n: int, min_scale: float, max_scale: float, generator: torch.Generator
) -> torch.Tensor:
    """WCA crops: side ``int(U(min, max) * min(H, W))``, placed uniformly inside the image."""
    u = torch.rand(n, generator=generator, dtype=torch.float64) * (max_scale - min_scale) + min_scale
    side = (u * min(width, height)).long().clamp(min=1)
    fx = torch.rand(n, generator=generator, dtype=torch.float64)
    fy = torch.rand(n, generator=generator, dtype=torch.float64)
    x0 = (fx * (width - side + 1).double()).long()
    y0 = (fy * (height - side + 1).double()).long()
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=1)


def random_resized_box(width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float],
                       generator: torch.Generator) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop.get_params``, drawn from ``generator``: up to ten tries of
    an area share U(scale) of the image and an aspect ratio log-uniform in ``ratio``, placed
    uniformly where it fits; else the centre crop of the whole image with its aspect clamped to
    ``ratio``. -> (x0, y0, x1, y1)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * torch.empty(1, dtype=torch.float64).uniform_(scale[0], scale[1], generator=generator).item()
        aspect = math.exp(torch.empty(1, dtype=torch.float64).uniform_(log_ratio[0], log_ratio[1], generator=generator).item())
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator).item())
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator).item())
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def grow_boxes(boxes: torch.Tensor, growth: float, width: int, height: int) -> torch.Tensor:
    """LGCA expansion: each side times ``growth`` about the box centre, clamped to the image
    (a box that already covers the image stays the whole image)."""
    b = boxes.double()
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    half_w, half_h = (b[:, 2] - b[:, 0]) * growth / 2, (b[:, 3] - b[:, 1]) * growth / 2
    grown = torch.stack(
        [
            torch.floor(cx - half_w),
            torch.floor(cy - half_h),
            torch.ceil(cx + half_w),
            torch.ceil(cy + half_h),
        ],
        dim=1,
    ).long()
    return clamp_boxes(grown, width, height)


def box_area_fraction(boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).double() / float(width * height)


def grid_size(image_size: int, patch_size: int) -> int:
    if image_size % patch_size:
        raise ValueError(f"image size {image_size} is not a multiple of patch size {patch_size}")
    return image_size // patch_size


__all__ = [
    "sample_centres",
    "patch_pixel_centres",
    "abs_raw_boxes",
    "clamp_boxes",
    "square_windows",
    "attention_to_grid",
    "boxes_to_windows",
    "covered_region",
    "random_square_boxes",
    "grow_boxes",
    "box_area_fraction",
    "grid_size",
]
