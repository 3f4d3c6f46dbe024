"""WCA (Li et al., ICML 2024): weighted random crops x weighted descriptions."""

import torch

from glocal.config import WCAConfig
from glocal.methods.weighting import weighted_score
from glocal.registry import register_method


@register_method("wca", image=("full", "wca"), text=("prompts", "descriptions"), config=WCAConfig)
def wca_scores(features, bank, config: WCAConfig) -> torch.Tensor:
    """Crop weights w_i = softmax(e^4 cos(f_full, f_i)) over the N random crops (the full image
    only feeds the weights); description weights v_cj = softmax_j(e^2 cos(t_cj, t_c^prompt)).
    code form: cos(normalise(sum w f), normalise(sum v t)); paper form: sum_i sum_j w v cos.
    full (B, D), wca (B, N, D), descriptions (C, M, D), prompts (C, D) -> (B, C)."""
    return weighted_score(
        features.full, features.need("wca"), bank.need("descriptions"), bank.need("prompts"),
        config.crop_weight_scale, config.description_weight_scale, config.form,
    )
