"""LGCA (Cao et al., 2025): local crops, then progressive expansion of the most salient.

No public code exists; glocal's rule is documented in docs/methods.md and LGCAConfig. The
expansion (which boxes grow) happens at extraction time (the ``lgca`` crop kind, ``glocal.kinds.lgca``); this function
only aggregates the per-step scores.
"""

import torch

from glocal.config import LGCAConfig
from glocal.methods.weighting import description_weights, weighted_score
from glocal.methods.registry import register_method


@register_method("lgca", image=("full", "lgca"), text=("prompts", "descriptions"), config=LGCAConfig)
def lgca_scores(features, bank, config: LGCAConfig) -> torch.Tensor:
    """score(c) = lambda_full S_full(c) + sum_t lambda_t S_t(c), t = 0..T, where S_t is the
    WCA code-form score of step t's crops (weights against the full image) and
    S_full(c) = cos(f_full, normalise(sum_j v_cj t_cj)). Default lambda uniform over T + 2 terms.
    full (B, D), lgca: T + 1 tensors (B, n_t, D) -> (B, C)."""
    steps = features.need("lgca")
    descriptions, prompts = bank.need("descriptions"), bank.need("prompts")
    n_terms = len(steps) + 1
    weights = config.step_weights or tuple([1.0 / n_terms] * n_terms)
    if len(weights) != n_terms:
        raise ValueError(f"LGCA got {len(steps)} steps but {len(weights)} step weights")
    v = description_weights(descriptions, prompts, config.description_weight_scale)
    text_side = torch.nn.functional.normalize(torch.einsum("cm,cmd->cd", v, descriptions.emb), dim=-1)
    score = weights[0] * (features.full @ text_side.T)
    for weight, crops in zip(weights[1:], steps):
        score = score + weight * weighted_score(
            features.full, crops, descriptions, prompts,
            config.crop_weight_scale, config.description_weight_scale, "code",
        )
    return score
