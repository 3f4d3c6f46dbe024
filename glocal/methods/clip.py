"""CLIP: one prompt per class."""

import torch

from glocal.methods.registry import register_method


@register_method("clip", image=("full",), text=("prompts",))
def clip_scores(features, bank, config) -> torch.Tensor:
    """score(c) = cos(f, t_c), t_c = "a photo of a {c}.". full (B, D), prompts (C, D) -> (B, C)."""
    return features.full @ bank.need("prompts").T
