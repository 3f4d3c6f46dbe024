"""ZERO (Farina et al., "Frustratingly Easy Test-Time Adaptation of Vision-Language Models",
NeurIPS 2024), as its official code (FarinaMatteo/zero, ``ttas/zero.py``) computes it."""

import torch

from glocal.config import ZeroConfig
from glocal.methods.registry import register_method

IMAGES_PER_CHUNK = 64  # (chunk, views, classes) logits at a time
RANK_WEIGHT = 1e-3  # below one vote: orders classes with equal votes (top-5) without touching top-1


def zero_votes(logits: torch.Tensor, keep: float, logit_scale: float) -> torch.Tensor:
    """logits (B, V, C): cosines of the V views (the original first) with the C class prompts ->
    (B, C) scores: votes, the prediction unique.

    1. confidence filter: the int(V * keep) views of lowest entropy of softmax(logit_scale * cos);
    2. zero temperature: each kept view votes for its argmax; the prediction is the majority;
    3. a tie is broken greedily: the first discarded view (by increasing entropy) whose argmax is
       among the tied classes decides; if none does, the tied class the first discarded view
       scores highest (the intent of the official ``break_sample_tie``, see docs/methods.md).
    Votes + RANK_WEIGHT x the kept views' mean probability, so classes with equal votes are ranked."""
    b, v, c = logits.shape
    probs = torch.softmax(logits.float() * logit_scale, dim=-1)
    entropy = torch.special.entr(probs).sum(-1)  # -sum p log p, 0 log 0 = 0
    order = torch.argsort(entropy, dim=1, stable=True)
    k = max(1, int(v * keep))
    kept = order[:, :k]
    kept_logits = torch.gather(logits, 1, kept[:, :, None].expand(-1, -1, c))
    votes = torch.nn.functional.one_hot(kept_logits.argmax(-1), c).sum(1).float()  # (B, C)
    most = votes.max(-1, keepdim=True).values
    for i in torch.nonzero((votes == most).sum(-1) > 1).flatten().tolist():
        ties = torch.nonzero(votes[i] == most[i]).flatten()
        rest = logits[i, order[i, k:]] if k < v else logits[i, order[i, :1]]
        winner = next((int(p) for p in rest.argmax(-1) if bool((ties == p).any())), None)
        if winner is None:
            winner = int(ties[rest[0, ties].argmax()])
        votes[i, winner] += 1
    kept_probs = torch.gather(probs, 1, kept[:, :, None].expand(-1, -1, c)).mean(1)
    return votes + RANK_WEIGHT * kept_probs


@register_method("zero", image=("full", "views"), text=("prompts",), config=ZeroConfig)
def zero_scores(features, bank, config: ZeroConfig) -> torch.Tensor:
    """full (B, D) and views (B, N, D), prompts (C, D) -> (B, C) votes (``zero_votes``); the
    views are the original image first, then the N augmented ones, as the official batch of 64."""
    views = torch.cat([features.full[:, None], features.need("views")[:, : config.n_crops]], dim=1)
    prompts = bank.need("prompts")
    out = []
    for start in range(0, len(views), IMAGES_PER_CHUNK):
        logits = torch.einsum("bvd,cd->bvc", views[start : start + IMAGES_PER_CHUNK].float(), prompts.float())
        out.append(zero_votes(logits, config.keep, config.logit_scale))
    return torch.cat(out) if out else torch.empty(0, prompts.shape[0])
