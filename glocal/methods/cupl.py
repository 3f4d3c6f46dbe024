"""CuPL (Pratt et al.): one class embedding from all its LLM sentences."""

import torch

from glocal.methods.registry import register_method


@register_method("cupl", image=("full",), text=("descriptions",))
def cupl_scores(features, bank, config) -> torch.Tensor:
    """score(c) = cos(f, normalise(mean_j t_cj)). full (B, D), descriptions (C, M, D) -> (B, C)."""
    return features.full @ bank.need("descriptions").class_means().T
