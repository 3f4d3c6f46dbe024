"""WCA-style weights shared by WCA and LGCA."""

from __future__ import annotations

import torch

from glocal.text.bank import Padded


def crop_weights(full: torch.Tensor, crops: torch.Tensor, scale: float) -> torch.Tensor:
    """``w_i = softmax_i(scale * cos(f_full, f_i))``: full (B, D), crops (B, N, D) -> (B, N)."""
    return torch.softmax(scale * torch.einsum("bd,bnd->bn", full, crops), dim=1)


def description_weights(descriptions: Padded, prompts: torch.Tensor, scale: float) -> torch.Tensor:
    """``v_cj = softmax_j(scale * cos(t_cj, t_c^prompt))`` over each class's real sentences:
    descriptions (C, M, D), prompts (C, D) -> (C, M), zero on padding."""
    logits = scale * torch.einsum("cmd,cd->cm", descriptions.emb, prompts)
    logits = logits.masked_fill(~descriptions.mask, float("-inf"))
    return torch.softmax(logits, dim=1)


def weighted_score(
    full: torch.Tensor,
    crops: torch.Tensor,
    descriptions: Padded,
    prompts: torch.Tensor,
    crop_scale: float,
    description_scale: float,
    form: str = "code",
) -> torch.Tensor:
    """WCA score (B, C). code: cos(normalise(sum_i w_i f_i), normalise(sum_j v_j t_cj));
    paper: sum_i sum_j w_i v_j cos(f_i, t_cj) = (sum_i w_i f_i) . (sum_j v_j t_cj)."""
    w = crop_weights(full, crops, crop_scale)  # (B, N)
    v = description_weights(descriptions, prompts, description_scale)  # (C, M)
    image_side = torch.einsum("bn,bnd->bd", w, crops)
    text_side = torch.einsum("cm,cmd->cd", v, descriptions.emb)
    if form == "code":
        image_side = torch.nn.functional.normalize(image_side, dim=-1)
        text_side = torch.nn.functional.normalize(text_side, dim=-1)
    elif form != "paper":
        raise ValueError(f"unknown WCA form {form!r}; expected 'code' or 'paper'")
    return image_side @ text_side.T
