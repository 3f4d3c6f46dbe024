"""ABS (Cai et al., ICML 2025): attention-guided raw and feature crops with soft matching."""

import torch

from glocal.config import ABSConfig
from glocal.registry import register_method


def _crops_used(config: ABSConfig) -> set[str]:
    return {kind for kind, used in (("raw", config.use_raw), ("feat", config.use_feature)) if used}


@register_method(
    "abs", image=("raw", "feat"), text=("descriptions",), config=ABSConfig, needs_for_config=_crops_used
)
def abs_scores(features, bank, config: ABSConfig) -> torch.Tensor:
    """Crops F = raw (B, N, D) and/or feat (B, N, D) per the Frs/Ffs switches (the full image is
    not a crop); t_cj = the first M CuPL sentences of each class, (C, M, D), not averaged.

    Soft matching: s_icj = cos(F_i, t_cj) / T; p_icj = softmax over all real (c, j) pairs of crop
    i; score(c) = sum_i sum_j p_icj s_icj. Without it: mean_i mean_j cos(F_i, t_cj).
    -> (B, C)."""
    crops = []
    if config.use_raw:
        crops.append(features.need("raw"))
    if config.use_feature:
        crops.append(features.need("feat"))
    crops = torch.cat(crops, dim=1)  # (B, n, D)
    padded = bank.need("descriptions").first(config.n_descriptions)
    cos = torch.einsum("bnd,cmd->bncm", crops, padded.emb)
    mask = padded.mask  # (C, M)
    if not config.soft_matching:
        per_crop = (cos * mask).sum(-1) / mask.sum(-1)  # (B, n, C)
        return per_crop.mean(dim=1)
    s = cos / config.match_temperature
    b, n, c, m = s.shape
    logits = s.masked_fill(~mask, float("-inf")).reshape(b, n, c * m)
    p = torch.softmax(logits, dim=-1).reshape(b, n, c, m)
    return (p * s.masked_fill(~mask, 0.0)).sum(dim=(1, 3))
