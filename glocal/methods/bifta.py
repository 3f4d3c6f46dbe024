"""BiFTA ("Let's Roll a BiFTA: Bi-refinement for Fine-grained Text-visual Alignment in
Vision-Language Models", TMLR 2026), as its official code (tmlr-group/BiFTA, ``main.py`` and
``helper.py``) scores it: WCA's weighted crops against WCA's weighted descriptions, after view
refinement (IoU-filtered crops, the ``bifta`` crop kind) and description refinement."""

from __future__ import annotations

import weakref

import torch

from glocal.config import BiFTAConfig
from glocal.methods.registry import register_method
from glocal.methods.weighting import weighted_score
from glocal.seeding import generator_for
from glocal.text.bank import Padded


def refine_descriptions(descriptions: Padded, similarity: float, limit: int) -> Padded:
    """(C, M, D) with mask -> (C, K, D) with mask: per class, in order, a description is kept when
    its cosine with every kept one of its class is <= ``similarity``, until ``limit`` are kept.
    (The official repository ships the refined files, bifta0.99_top50, not the refinement code: this is
    the paper's rule with the file name's numbers; see docs/methods.md.)"""
    emb, mask = descriptions.emb, descriptions.mask
    kept = torch.zeros_like(mask)
    count = torch.zeros(len(mask), dtype=torch.long)
    for j in range(mask.shape[1]):
        # (C, j): description j against the earlier ones of its class (never the whole (C, M, M))
        cos = torch.einsum("cd,ckd->ck", emb[:, j].float(), emb[:, :j].float())
        close = ((cos > similarity) & kept[:, :j]).any(-1)
        take = mask[:, j] & ~close & (count < limit)
        kept[:, j] = take
        count += take.long()
    width = int(count.max())
    order = torch.argsort((~kept).to(torch.int8), dim=1, stable=True)[:, :width]  # kept ones first, in order
    refined = torch.gather(emb, 1, order[:, :, None].expand(-1, -1, emb.shape[-1]))
    return Padded(refined, torch.arange(width)[None, :] < count[:, None])


# the refined descriptions of the banks in use: a shard is scored in 20 draws and the refinement
# (C·M²/2 cosines: ~1 GFLOP on ImageNet) depends only on the bank, not on the draw
_refined: dict[tuple[int, float, int], tuple[weakref.ref, Padded]] = {}


def refined_once(descriptions: Padded, similarity: float, limit: int) -> Padded:
    """``refine_descriptions``, computed once per bank (held while the bank lives)."""
    key = (id(descriptions), similarity, limit)
    hit = _refined.get(key)
    if hit is not None and hit[0]() is descriptions:
        return hit[1]
    for stale in [k for k, (ref, _) in _refined.items() if ref() is None]:
        del _refined[stale]
    refined = refine_descriptions(descriptions, similarity, limit)
    _refined[key] = (weakref.ref(descriptions), refined)
    return refined


def draw_picks(config: BiFTAConfig, image_id: str, kept: int, draw: int) -> torch.Tensor:
    """(draw_size,) indices into one image's ``kept`` crops, with replacement: main.py's per-image
    ``torch.randint(0, valid_num, (patch_n,))`` of run ``draw``, seeded by (seed, image id, draw)."""
    return torch.randint(0, kept, (config.draw_size,), generator=generator_for(config.seed, image_id, f"bifta-draw:{draw}"))


@register_method("bifta", image=("full", "bifta"), text=("prompts", "descriptions"), config=BiFTAConfig,
                 draws=lambda config: config.draws)
def bifta_scores(features, bank, config: BiFTAConfig, draw: int = 0) -> torch.Tensor:
    """BiFTA: WCA's weighted crops and descriptions after dropping crops that overlap a kept one
    (IoU) and near-duplicate descriptions (cosine); 20 draws of 60 kept crops per image.

    Draw ``draw``: ``draw_size`` of each image's kept crops picked with replacement
    (``draw_picks``), weighted w_i = softmax(e^4 cos(f_full, f_i)); the refined descriptions
    (``refine_descriptions``) weighted v_cj = softmax_j(e^2 cos(t_cj, t_c^prompt)); score =
    cos(normalise(sum w f), normalise(sum v t)).
    full (B, D), bifta (B, K_max, D) kept crops then zero rows, descriptions (C, M, D), prompts (C, D) -> (B, C)."""
    if features.image_ids is None:
        raise ValueError("bifta draws crops per image: its features need their image ids")
    pool = features.need("bifta")
    kept = (pool.norm(dim=-1) > 0.5).sum(1).clamp(min=1)  # real crops are unit vectors, padding is zero
    picks = torch.stack([draw_picks(config, image_id, int(n), draw) for image_id, n in zip(features.image_ids, kept.tolist())])
    crops = torch.gather(pool, 1, picks[:, :, None].expand(-1, -1, pool.shape[-1]))
    descriptions = refined_once(bank.need("descriptions"), config.description_similarity, config.n_descriptions)
    return weighted_score(features.full, crops, descriptions, bank.need("prompts"), config.crop_weight_scale,
                          config.description_weight_scale, "code")
