"""WaffleCLIP (Roth et al.): CLIP-D's scoring over random word/character descriptors."""

import torch

from glocal.config import WaffleConfig
from glocal.methods.clip_d import descriptor_scores
from glocal.methods.registry import register_method


@register_method("waffle", image=("full",), text=("waffle",), config=WaffleConfig)
def waffle_scores(features, bank, config: WaffleConfig) -> torch.Tensor:
    """score(c) over the class's random sentences (built as config.construction says), averaged as config.averaging says. (B, D) -> (B, C)."""
    return descriptor_scores(features.full, bank.need("waffle"), config.averaging)
