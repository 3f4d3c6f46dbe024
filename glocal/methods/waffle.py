"""WaffleCLIP (Roth et al.): CLIP-D's averaging over random word/character descriptors."""

import torch

from glocal.methods.clip_d import mean_description_similarity
from glocal.registry import register_method


@register_method("waffle", image=("full",), text=("waffle",))
def waffle_scores(features, bank, config) -> torch.Tensor:
    """score(c) = mean_j cos(f, t_cj) over the class's random sentences. (B, D) -> (B, C)."""
    return mean_description_similarity(features.full, bank.need("waffle"))
