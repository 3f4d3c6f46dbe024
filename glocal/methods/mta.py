"""MTA (Zanella & Ben Ayed, "On the test-time zero-shot generalization of vision-language models:
Do we really need prompt learning?", CVPR 2024), as its official code (MaxZanella/MTA, ``mta.py``)
computes it: MeanShift over the views with inlierness scores; the mode is the image embedding."""

import torch

from glocal.config import MTAConfig
from glocal.methods.registry import register_method

IMAGES_PER_CHUNK = 64
THRESHOLD = 1e-6  # the official convergence threshold of each inner loop


def mta_mode(features: torch.Tensor, logits: torch.Tensor, config: MTAConfig) -> torch.Tensor:
    """features (B, V, D) normalised, the original view first; logits (B, V, C) = scale x cos ->
    (B, D) modes.

    bandwidth h_i = sqrt(0.5 mean_{k nearest j != i} ||x_i - x_j||^2), k = max(1, int(neighbours (V - 1)));
    affinity A = softmax(logits) softmax(logits)^T; y uniform; mode m = x_0; then ``max_iter``
    rounds of: density_i = exp(-||x_i - m||^2 / (2 h_i^2)); y <- softmax((density + lambda_q A y)
    / lambda_y) until it moves less than 1e-6 (at most max_iter times); m <- normalise(sum_i
    density_i y_i x_i / sum_i density_i y_i), the density recomputed each step, until m moves less
    than 1e-6 (at most max_iter times). Each image stops its loops on its own convergence."""
    x = features.float()
    b, v, _ = x.shape
    distances = torch.cdist(x, x)
    # at least one neighbour: with fewer than 5 views the official int(0.3 (V - 1)) is 0 and its
    # bandwidth the mean of nothing (NaN scores); from 5 views on this is the official k
    k = max(1, int(config.neighbours * (v - 1)))
    nearest = torch.sort(distances, dim=-1).values[:, :, 1 : k + 1] ** 2
    bandwidth = torch.sqrt(0.5 * nearest.mean(-1))  # (B, V)
    soft = torch.softmax(logits.float(), dim=-1)
    affinity = soft @ soft.transpose(1, 2)  # (B, V, V)
    y = torch.full((b, v), 1.0 / v)
    mode = x[:, 0]

    def density(m):
        return torch.exp(-((x - m[:, None]).norm(dim=-1) ** 2) / (2 * bandwidth**2))

    for _ in range(config.max_iter):
        d = density(mode)
        moving = torch.ones(b, dtype=torch.bool)
        for _ in range(config.max_iter):
            new = torch.softmax((d + config.lambda_q * (affinity * y[:, None, :]).sum(-1)) / config.lambda_y, dim=-1)
            step = (new - y).norm(dim=-1)
            y = torch.where(moving[:, None], new, y)
            moving &= step >= THRESHOLD
            if not moving.any():
                break
        moving = torch.ones(b, dtype=torch.bool)
        for _ in range(config.max_iter):
            weights = density(mode) * y
            new = (weights[:, :, None] * x).sum(1) / weights.sum(1, keepdim=True)
            new = new / new.norm(dim=-1, keepdim=True)
            step = (mode - new).norm(dim=-1)
            mode = torch.where(moving[:, None], new, mode)
            moving &= step >= THRESHOLD
            if not moving.any():
                break
    return mode


@register_method("mta", image=("full", "views"), text=("prompts",), config=MTAConfig)
def mta_scores(features, bank, config: MTAConfig) -> torch.Tensor:
    """full (B, D) and views (B, N, D), prompts (C, D) -> (B, C) = scale x mode . prompts."""
    views = torch.cat([features.full[:, None], features.need("views")[:, : config.n_crops]], dim=1).float()
    prompts = bank.need("prompts").float()
    out = []
    for start in range(0, len(views), IMAGES_PER_CHUNK):
        chunk = views[start : start + IMAGES_PER_CHUNK]
        logits = torch.einsum("bvd,cd->bvc", chunk, prompts) * config.logit_scale
        out.append(mta_mode(chunk, logits, config) @ prompts.T * config.logit_scale)
    return torch.cat(out) if out else torch.empty(0, prompts.shape[0])
