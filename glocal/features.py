"""Precomputed image features, the only image input of a method. All L2-normalised, float32."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ImageFeatures:
    full: torch.Tensor  # (B, D) the whole image, CLIP-preprocessed
    raw: torch.Tensor | None = None  # (B, N, D) ABS raw-space crops
    feat: torch.Tensor | None = None  # (B, N, D) ABS feature-space windows
    wca: torch.Tensor | None = None  # (B, N, D) WCA random crops
    lgca: list[torch.Tensor] | None = None  # steps 0..T, each (B, n_t, D)
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # registered crop kinds: name -> (B, N, D)

    def need(self, name: str):
        value = self.extra[name] if name in self.extra else getattr(self, name, None)
        if value is None:
            raise ValueError(f"these image features have no {name!r} crops; extract them for this method first")
        return value

    @property
    def batch(self) -> int:
        return self.full.shape[0]
