"""AWT (Zhu et al., "AWT: Transferring Vision-Language Models via Augmentation, Weighting, and
Transportation", NeurIPS 2024), as its official zero-shot code (MCG-NJU/AWT,
``AWT_zero_shot/evaluate.py``) computes it: the original image and its augmented views against
each class's prompt and LLM descriptions, both sets weighted by prediction entropy, each class
scored by the optimal-transport plan between them."""

from __future__ import annotations

import torch

from glocal.config import AWTConfig
from glocal.methods.budget import DEFAULT_SCORE_MEMORY, FLOAT_BYTES, ScoreShape, require
from glocal.methods.registry import register_method

# (classes, views, prompts) float tensors alive at once per image in the transport step: the
# logits, the kernel and the plan
TRANSPORT_TENSORS = 3


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """(..., C) logits -> (...) entropy of their softmax (the official calculate_batch_entropy)."""
    return -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)


def replaced_entropy(anchor: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """anchor (B, C), values (B, C, N) -> (B, C, N): the entropy of softmax(anchor with entry c
    replaced by values[b, c, n]). The official code builds that (N, C, C) tensor per image; this is
    its closed form, (B, C, N) in memory: with e_j = exp(a_j - m), S_c = sum_{j != c} e_j and
    Z_c = sum_{j != c} e_j a_j (the argmax class's sums taken directly, not by subtraction),
    H = m + log(S_c + e_x) - (Z_c + e_x x) / (S_c + e_x), in float64."""
    a, x = anchor.double(), values.double()
    m = torch.maximum(a.max(-1).values, x.flatten(1).max(-1).values)[:, None]  # (B, 1)
    e = torch.exp(a - m)
    rest = e.sum(-1, keepdim=True) - e  # (B, C): sum over j != c
    rest_weighted = (e * a).sum(-1, keepdim=True) - e * a
    top = a.argmax(-1)  # where the subtraction would cancel: summed without it instead
    rows = torch.arange(len(a))
    others = torch.ones_like(e, dtype=torch.bool)
    others[rows, top] = False
    rest[rows, top] = (e * others).sum(-1)
    rest_weighted[rows, top] = (e * a * others).sum(-1)
    ex = torch.exp(x - m[:, :, None])
    total = rest[:, :, None] + ex
    return (m[:, :, None] + torch.log(total) - (rest_weighted[:, :, None] + ex * x) / total).float()


def sinkhorn(kernel: torch.Tensor, u: torch.Tensor, v: torch.Tensor, threshold: float, iterations: int) -> torch.Tensor:
    """kernel (B, C, M, N), u (B, M), v (B, C, N) -> the plan (B, C, M, N) = r c K, the official
    ``Sinkhorn``: r, c from ones; r = u / (K c), c = v / (K^T r), until mean |r - r_prev| over (C, M)
    falls below ``threshold`` (at most ``iterations`` times). Each image stops on its own
    convergence, as the official one-image loop does."""
    b, classes, m, n = kernel.shape
    r = torch.ones(b, classes, m, dtype=kernel.dtype)
    c = torch.ones(b, classes, n, dtype=kernel.dtype)
    moving = torch.ones(b, dtype=torch.bool)
    for i in range(iterations):
        new_r = u[:, None, :] / torch.einsum("bcmn,bcn->bcm", kernel, c)
        new_c = v / torch.einsum("bcmn,bcm->bcn", kernel, new_r)
        # the first step compares with the official r0 = ones(M), broadcast over the classes
        step = (new_r - r).abs().mean(dim=(1, 2))
        r = torch.where(moving[:, None, None], new_r, r)
        c = torch.where(moving[:, None, None], new_c, c)
        moving &= step >= threshold
        if not moving.any():
            break
    return r[..., None] * c[:, :, None, :] * kernel


def awt_weights(views: torch.Tensor, text: torch.Tensor, mask: torch.Tensor, config: AWTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """views (B, M, D) the original first, text (C, N, D) with mask (C, N) -> (view weights (B, M),
    prompt weights (B, C, N)), the official ``get_entropy_weight``:
    view m: softmax_m(-H(mean_n logits[m, n, :]) / image_temperature);
    prompt n of class c: softmax_n(-H(a with a_c := logits[0, n, c]) / text_temperature), where a =
    mean_n logits[0, n, :] (the original image's prompt-averaged logits); logits = scale x cos.
    The mean over a class's prompts is the dot with its mean prompt (the logits are linear)."""
    weights = mask.to(text.dtype)
    mean_text = (text * weights[:, :, None]).sum(1) / weights.sum(1, keepdim=True)  # (C, D)
    view_logits = config.logit_scale * views @ mean_text.T  # (B, M, C)
    view_weights = torch.softmax(-entropy(view_logits) / config.image_temperature, dim=-1)
    original = config.logit_scale * torch.einsum("bd,cnd->bcn", views[:, 0], text)  # (B, C, N)
    prompt_entropy = replaced_entropy(view_logits[:, 0], original)
    prompt_entropy = prompt_entropy.masked_fill(~mask[None], float("inf"))
    return view_weights, torch.softmax(-prompt_entropy / config.text_temperature, dim=-1)


def awt_transport(views: torch.Tensor, text: torch.Tensor, mask: torch.Tensor, config: AWTConfig) -> torch.Tensor:
    """views (B, M, D), text (C, N, D) with mask (C, N) -> (B, C) scores: sum_{m, n} T_cmn
    logits_cmn, T the Sinkhorn plan between the weighted views and the weighted prompts of class
    c under the cost 1 - cos (``optimal_transport``: K = exp(-(1 - cos) / eps))."""
    view_weights, prompt_weights = awt_weights(views, text, mask, config)
    cos = torch.einsum("bmd,cnd->bcmn", views, text)
    kernel = torch.exp(-(1.0 - cos) / config.ot_epsilon)
    plan = sinkhorn(kernel, view_weights, prompt_weights, config.sinkhorn_threshold, config.sinkhorn_iterations)
    return (plan * cos).sum(dim=(2, 3)) * config.logit_scale


def _sizes(config: AWTConfig, shape: ScoreShape) -> tuple[int, int]:
    views = 1 + config.n_crops
    prompts = min(1 + config.n_descriptions, shape.sentences.get("awt", 1 + config.n_descriptions))
    return views, prompts


def _footprint(config: AWTConfig, shape: ScoreShape) -> int:
    """Bytes of one image's transport step: every class at once, as the official convergence test
    is over all classes together (splitting classes would change when each image stops)."""
    views, prompts = _sizes(config, shape)
    return transport_bytes(shape.classes, views, prompts)


def transport_bytes(classes: int, views: int, prompts: int) -> int:
    """One image's transport temporaries (``TRANSPORT_TENSORS`` of (C, views, prompts) float32)."""
    return TRANSPORT_TENSORS * classes * views * prompts * FLOAT_BYTES


@register_method("awt", image=("full", "views"), text=("awt",), config=AWTConfig, footprint=_footprint)
def awt_scores(features, bank, config: AWTConfig, memory: int = DEFAULT_SCORE_MEMORY) -> torch.Tensor:
    """AWT: the image and its augmented views against each class's prompt and LLM descriptions,
    both sets entropy-weighted, each class scored by optimal transport between them.

    full (B, D) and views (B, N, D) (the first ``n_crops``), awt (C, 1 + n_descriptions, D):
    each class's plain prompt then its descriptions -> (B, C) transport scores
    (``awt_transport``), in image chunks within ``memory`` bytes."""
    views = torch.cat([features.full[:, None], features.need("views")[:, : config.n_crops]], dim=1).float()
    text = bank.need("awt").first(1 + config.n_descriptions)
    emb, mask = text.emb.float(), text.mask
    per_image = transport_bytes(emb.shape[0], views.shape[1], emb.shape[1])
    require("awt", per_image, memory)
    chunk = max(1, memory // per_image)
    out = [awt_transport(views[start : start + chunk], emb, mask, config) for start in range(0, len(views), chunk)]
    return torch.cat(out) if out else torch.empty(0, emb.shape[0])
