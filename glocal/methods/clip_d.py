"""CLIP-D (Menon & Vondrick): mean similarity over descriptor sentences."""

import torch

from glocal.registry import register_method


def mean_description_similarity(full: torch.Tensor, padded) -> torch.Tensor:
    """mean_j cos(f, t_cj) over each class's real sentences: (B, D), (C, M, D) -> (B, C)."""
    sims = torch.einsum("bd,cmd->bcm", full, padded.emb)
    mask = padded.mask.float()
    return (sims * mask).sum(-1) / mask.sum(-1)


@register_method("clip_d", image=("full",), text=("clip_d",))
def clip_d_scores(features, bank, config) -> torch.Tensor:
    """score(c) = mean_j cos(f, t_cj), t_cj = "{c}, which (is/has) {d_j}". (B, D) -> (B, C)."""
    return mean_description_similarity(features.full, bank.need("clip_d"))
