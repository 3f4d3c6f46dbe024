"""CLIP-D (Menon & Vondrick): mean similarity over descriptor sentences."""

import torch

from glocal.registry import register_method


def mean_description_similarity(full: torch.Tensor, padded) -> torch.Tensor:
    """mean_j cos(f, t_cj) over each class's real sentences: (B, D), (C, M, D) -> (B, C).
    Linear in t, so f . mean_j t_cj: no (images, classes, sentences) tensor."""
    return full @ padded.means().T


@register_method("clip_d", image=("full",), text=("clip_d",))
def clip_d_scores(features, bank, config) -> torch.Tensor:
    """score(c) = mean_j cos(f, t_cj), t_cj = "{c}, which (is/has) {d_j}". (B, D) -> (B, C)."""
    return mean_description_similarity(features.full, bank.need("clip_d"))
