"""CLIP-E: the prompt-template ensemble."""

import torch

from glocal.methods.registry import register_method


@register_method("clip_e", image=("full",), text=("templates",))
def clip_e_scores(features, bank, config) -> torch.Tensor:
    """score(c) = cos(f, normalise(mean_t t_{c,t})). full (B, D), templates (C, T, D) -> (B, C)."""
    classes = torch.nn.functional.normalize(bank.need("templates").mean(dim=1), dim=-1)
    return features.full @ classes.T
