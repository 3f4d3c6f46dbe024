"""CLIP-D (Menon & Vondrick): a class scored by its descriptor sentences."""

import torch

from glocal.config import DescriptorConfig
from glocal.methods.registry import register_method


def descriptor_scores(full: torch.Tensor, padded, averaging: str) -> torch.Tensor:
    """(B, D), (C, M, D) -> (B, C). ``"cosine"``: mean_j cos(f, t_cj), Menon & Vondrick's paper;
    linear in t, so f . mean_j t_cj and no (images, classes, sentences) tensor. ``"embedding"``:
    cos(f, normalise(mean_j t_cj)), one class embedding as the official WCA/ABS code builds it
    (``zeroshot_classifier``). They rank classes differently when the means' norms differ."""
    if averaging == "cosine":
        return full @ padded.means().T
    if averaging == "embedding":
        return full @ padded.class_means().T
    raise ValueError(f"unknown averaging {averaging!r}; expected 'cosine' or 'embedding'")


@register_method("clip_d", image=("full",), text=("clip_d",), config=DescriptorConfig)
def clip_d_scores(features, bank, config: DescriptorConfig) -> torch.Tensor:
    """score(c) over t_cj = "{c}, which (is/has) {d_j}", averaged as config.averaging says. (B, D) -> (B, C)."""
    return descriptor_scores(features.full, bank.need("clip_d"), config.averaging)
