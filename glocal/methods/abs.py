"""ABS (Cai et al., ICML 2025): attention-guided raw and feature crops with soft matching."""

import torch

from glocal.methods.budget import DEFAULT_SCORE_MEMORY, ScoreShape
from glocal.config import ABSConfig
from glocal.methods.soft_matching import smallest_chunk_bytes, soft_matching_scores
from glocal.methods.registry import register_method


def _crops_used(config: ABSConfig) -> set[str]:
    return {kind for kind, used in (("raw", config.use_raw), ("feat", config.use_feature)) if used}


def _footprint(config: ABSConfig, shape: ScoreShape) -> int:
    """Bytes of ABS's smallest scoring chunk (one image, one class)."""
    if not config.soft_matching:
        return 0
    crops = sum(shape.crops.get(kind, config.n_crops) for kind in _crops_used(config))
    sentences = min(config.n_descriptions, shape.sentences.get("descriptions", config.n_descriptions))
    return smallest_chunk_bytes(crops, shape.classes, sentences)


@register_method(
    "abs", image=("raw", "feat"), text=("descriptions",), config=ABSConfig, needs_for_config=_crops_used,
    footprint=_footprint,
)
def abs_scores(features, bank, config: ABSConfig, memory: int = DEFAULT_SCORE_MEMORY) -> torch.Tensor:
    """Crops F = raw (B, N, D) and/or feat (B, N, D) per the Frs/Ffs switches (the full image is
    not a crop); t_cj = the first M CuPL sentences of each class, (C, M, D), not averaged.

    Soft matching: s_icj = cos(F_i, t_cj) / T; p_icj = softmax over all real (c, j) pairs of crop
    i; score(c) = sum_i sum_j p_icj s_icj, in chunks within ``memory`` bytes
    (``glocal.methods.soft_matching``). Without it: mean_i mean_j cos(F_i, t_cj), which is
    linear: mean_i F_i . mean_j t_cj. -> (B, C)."""
    crops = torch.cat([features.need(kind) for kind in ("raw", "feat") if kind in _crops_used(config)], dim=1)  # (B, n, D)
    text = bank.need("descriptions").first(config.n_descriptions)
    if not config.soft_matching:
        return crops.mean(dim=1) @ text.means().T
    return soft_matching_scores(crops, text, config.match_temperature, memory)
