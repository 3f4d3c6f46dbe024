"""Feature-space views of a window on the token grid (the ABS paper's Table 5, right half).

Input: one image's tokens ``(P + g*g, W)`` at the input of block L and windows ``(n, 4)`` of
cells ``[x0, y0, x1, y1)``. Output: ``(n, P + g*g, W)`` tokens for ``Backbone.run_from`` and an
optional ``(n, P + g*g)`` additive attention bias.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from glocal.geometry.resample import torch_bicubic_weights
from glocal.geometry.tensor_crops import full_precision, to_device

# Tokens outside the window move this far toward the grid's mean token. A plain rescale of the
# window's tokens would be a no-op: every block starts with a per-token LayerNorm.
HIGHLIGHT_BACKGROUND_PULL = 0.5
HIGHLIGHT_ATTENTION_BIAS = 1.0  # added to the attention logits of keys inside the window


def split_tokens(tokens: torch.Tensor, prefix: int, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., P + g*g, W) -> prefix (..., P, W), grid (..., g, g, W)."""
    width = tokens.shape[-1]
    return tokens[..., :prefix, :], tokens[..., prefix:, :].reshape(*tokens.shape[:-2], grid, grid, width)


def _window_mask(windows: torch.Tensor, grid: int, device: torch.device) -> torch.Tensor:
    """(n, 4) windows -> (n, g, g) bool on ``device`` (the tokens'), True inside."""
    ar = torch.arange(grid, device=device)
    windows = to_device(windows, device)
    x0, y0, x1, y1 = (windows[:, i, None] for i in range(4))
    inside_x = (ar[None] >= x0) & (ar[None] < x1)
    inside_y = (ar[None] >= y0) & (ar[None] < y1)
    return inside_y[:, :, None] & inside_x[:, None, :]


def crop_windows(tokens: torch.Tensor, windows: torch.Tensor, prefix: int, grid: int):
    """Each window's tokens bicubic-resized back to g x g (align_corners=False), the full image's
    prefix (CLS) tokens re-attached."""
    head, cells = split_tokens(tokens, prefix, grid)
    out = []
    for x0, y0, x1, y1 in windows.tolist():
        patch = cells[y0:y1, x0:x1].permute(2, 0, 1).unsqueeze(0).float()  # (1, W, h, w)
        resized = F.interpolate(patch, size=(grid, grid), mode="bicubic", align_corners=False)
        out.append(resized[0].permute(1, 2, 0).reshape(grid * grid, -1).to(tokens.dtype))
    body = torch.stack(out)
    return torch.cat([head.unsqueeze(0).expand(len(out), -1, -1), body], dim=1), None


def crop_windows_batched(tokens: torch.Tensor, windows: torch.Tensor, prefix: int, grid: int):
    """``crop_windows`` for all windows at once: the bicubic resize of each window is one weight
    matrix per axis (``torch_bicubic_weights``, interpolate's own taps), so n windows take two
    batched matmuls instead of n interpolate calls (the launches, not the arithmetic, cost on a
    GPU). Equal to ``crop_windows`` up to float rounding."""
    head, cells = split_tokens(tokens, prefix, grid)
    win = np.asarray(windows, dtype=np.int64).reshape(-1, 4)
    n = len(win)
    along_x = to_device(torch_bicubic_weights(win[:, 0], win[:, 2] - win[:, 0], grid, grid), tokens.device)
    along_y = to_device(torch_bicubic_weights(win[:, 1], win[:, 3] - win[:, 1], grid, grid), tokens.device)
    with full_precision(tokens.device):  # float32, as interpolate runs under autocast
        across = torch.matmul(along_x[:, None], cells.float()[None])  # (n, g_y, g, W): every row resized across
        body = torch.bmm(along_y, across.reshape(n, grid, -1)).reshape(n, grid * grid, -1)  # then down the rows
    return torch.cat([head.unsqueeze(0).expand(n, -1, -1), body.to(tokens.dtype)], dim=1), None


def mask_windows(tokens: torch.Tensor, windows: torch.Tensor, prefix: int, grid: int):
    """Tokens outside the window set to zero; grid size kept."""
    inside = _window_mask(windows, grid, tokens.device).reshape(len(windows), grid * grid, 1).to(tokens.dtype)
    body = tokens[prefix:].unsqueeze(0) * inside
    return torch.cat([tokens[:prefix].unsqueeze(0).expand(len(windows), -1, -1), body], dim=1), None


def highlight_token_windows(tokens: torch.Tensor, windows: torch.Tensor, prefix: int, grid: int):
    """The window stands out: tokens outside it are pulled HIGHLIGHT_BACKGROUND_PULL of the way
    toward the mean patch token (less contrast in the background), tokens inside unchanged."""
    inside = _window_mask(windows, grid, tokens.device).reshape(len(windows), grid * grid, 1).to(tokens.dtype)
    cells = tokens[prefix:].unsqueeze(0)
    mean = cells.mean(dim=1, keepdim=True)
    dimmed = cells + HIGHLIGHT_BACKGROUND_PULL * (mean - cells)
    body = inside * cells + (1 - inside) * dimmed
    return torch.cat([tokens[:prefix].unsqueeze(0).expand(len(windows), -1, -1), body], dim=1), None


def highlight_attention_windows(tokens: torch.Tensor, windows: torch.Tensor, prefix: int, grid: int):
    """Tokens unchanged; keys inside the window get +HIGHLIGHT_ATTENTION_BIAS in every remaining
    block's attention logits."""
    inside = _window_mask(windows, grid, tokens.device).reshape(len(windows), grid * grid).float()
    bias = torch.cat([inside.new_zeros(len(windows), prefix), HIGHLIGHT_ATTENTION_BIAS * inside], dim=1)
    return tokens.unsqueeze(0).expand(len(windows), -1, -1), bias


FEATURE_AUGMENTS: dict[str, Callable] = {
    "crop": crop_windows,
    "mask": mask_windows,
    "highlight_tokens": highlight_token_windows,
    "highlight_attention": highlight_attention_windows,
}


def feature_augment(name: str) -> Callable:
    try:
        return FEATURE_AUGMENTS[name]
    except KeyError:
        raise ValueError(f"unknown feature augmentation {name!r}; choose from {sorted(FEATURE_AUGMENTS)}") from None
