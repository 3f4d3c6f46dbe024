"""Precomputed image features, the only image input of a method, and the geometry they came from."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ImageFeatures:
    """All L2-normalised, float32."""

    full: torch.Tensor  # (B, D) the whole image, preprocessed as the backbone's processor does
    # crop kind -> (B, N, D) (ABS raw/feat, WCA, a plugin's), or one (B, n_t, D) per step (LGCA)
    crops: dict[str, torch.Tensor | list[torch.Tensor]] = field(default_factory=dict)
    # the B images' ids, in row order: what a method's per-image random draws are seeded from
    image_ids: list[str] | None = None

    def need(self, name: str):
        value = self.full if name == "full" else self.crops.get(name)
        if value is None:
            raise ValueError(f"these image features have no {name!r} crops; extract them for this method first")
        return value

    @property
    def batch(self) -> int:
        return self.full.shape[0]


@dataclass
class KindOutput:
    """One crop kind's result for a batch of images."""

    features: torch.Tensor | list[torch.Tensor]  # (B, N, D), or (LGCA) one (B, n_t, D) per step
    boxes: dict[str, list] = field(default_factory=dict)  # geometry column -> per image (N, 4) (LGCA: per step too)


@dataclass
class CropRecord:
    """The geometry actually encoded, per crop kind (for storage, pictures and tests)."""

    outputs: dict[str, KindOutput] = field(default_factory=dict)  # kind -> its output
    attention: torch.Tensor | None = None  # (B, g_a, g_a)

    @property
    def boxes(self) -> dict[str, list]:
        """Every kind's geometry by column: ``raw_boxes``, ``windows``, ``wca_boxes``,
        ``lgca_boxes`` (per image, per step), ``<kind>_boxes``: one (N, 4) tensor per image."""
        return {name: boxes for output in self.outputs.values() for name, boxes in output.boxes.items()}
