"""WCA (Li et al., ICML 2024): weighted random crops x weighted descriptions."""

import torch

from glocal.config import WCAConfig
from glocal.methods.weighting import weighted_score
from glocal.methods.registry import register_method
from glocal.seeding import generator_for


def draw_picks(config: WCAConfig, pool: int, draw: int) -> torch.Tensor:
    """(draw_size,) crop indices into the pool for draw ``draw``, with replacement, the same for
    every image of that draw (the official evaluation's ``torch.randint(0, pool, (60,))`` per run),
    seeded by (seed, draw) so a shard scored alone picks what the whole dataset does."""
    return torch.randint(0, pool, (config.draw_size,), generator=generator_for(config.seed, f"draw:{draw}", "wca-draw"))


@register_method("wca", image=("full", "wca"), text=("prompts", "descriptions"), config=WCAConfig,
                 draws=lambda config: config.draws)
def wca_scores(features, bank, config: WCAConfig, draw: int = 0) -> torch.Tensor:
    """Crop weights w_i = softmax(e^4 cos(f_full, f_i)) over the N random crops (the full image
    only feeds the weights); description weights v_cj = softmax_j(e^2 cos(t_cj, t_c^prompt)).
    code form: cos(normalise(sum w f), normalise(sum v t)); paper form: sum_i sum_j w v cos.
    With a draw_size, the crops of draw ``draw`` only (``draw_picks``).
    full (B, D), wca (B, N, D), descriptions (C, M, D), prompts (C, D) -> (B, C)."""
    crops = features.need("wca")
    if config.draw_size is not None:
        crops = crops[:, draw_picks(config, crops.shape[1], draw)]
    return weighted_score(
        features.full, crops, bank.need("descriptions"), bank.need("prompts"),
        config.crop_weight_scale, config.description_weight_scale, config.form,
    )
