"""Scoring: every method's scores for one batch of features, within the memory budget, and the
restriction to a dataset's scored classes. The pipeline's score stage calls these; so does
``glocal demo``. No I/O here. (Which methods run, with which configs and features: ``glocal.run.plan``.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from glocal.methods.budget import DEFAULT_SCORE_MEMORY

if TYPE_CHECKING:
    from glocal.run.plan import MethodRun


def score_all(runs: list[MethodRun], features, bank, memory: int = DEFAULT_SCORE_MEMORY) -> dict[str, torch.Tensor]:
    """{method: (B, C) scores}; each method's temporaries within ``memory`` bytes."""
    return {run.spec.name: run.spec.score(features, bank, run.config, memory).float() for run in runs}


def restrict_classes(scores: torch.Tensor, subset: list[int] | None) -> torch.Tensor:
    """(n, C) scores -> (n, C) with every class outside ``subset`` at -inf, so top-k ranks only the
    subset while class indices stay in the full label space (ImageNet-R/-A: 200 of 1000 logits)."""
    if subset is None:
        return scores
    keep = torch.zeros(scores.shape[1], dtype=torch.bool)
    keep[torch.as_tensor(subset, dtype=torch.long)] = True
    return scores.masked_fill(~keep.to(scores.device), float("-inf"))
