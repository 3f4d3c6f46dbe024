"""Registered crop kinds: a method that needs a new kind of crop registers it here (one
decorator in its own module) and the pipeline plans, encodes, stores, reloads and keys it with
no other change.

A kind is planned per image from the image's size (and its config, if it has one) as pixel boxes
in the original image, the same number for every image; each box is cropped, preprocessed like a
whole image and encoded. The built-in kinds (full, ABS's raw/feat, WCA, LGCA) keep their own
fused paths in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class CropKind:
    name: str
    # (width, height, config, image_id) -> (N, 4) int64 boxes [x0, y0, x1, y1] in the original
    # image, x1/y1 exclusive; N the same for every image; draws seeded from (seed, image_id, ...)
    plan: Callable[[int, int, object, str], torch.Tensor]
    config: type | None = None  # the config class a method using this kind runs with (None: none)
    summary: str = ""
    # raised by the kind's author when ``plan`` changes its boxes without a config field changing:
    # part of the features' key, so features planned before are recomputed, not reused
    version: int = 1


CROP_KINDS: dict[str, CropKind] = {}
# the built-in kinds, and names their stored columns use: a registered kind takes none of them
BUILT_IN_KINDS = frozenset({"full", "raw", "feat", "wca", "lgca"})
RESERVED_NAMES = BUILT_IN_KINDS | {"image_id", "windows"}


def register_crop_kind(name: str, *, config: type | None = None, version: int = 1) -> Callable[[Callable], Callable]:
    """Decorator: register ``plan`` as crop kind ``name``; its features are ``features.need(name)``
    (B, N, D) in the methods that declare ``image=(..., name)``."""

    def wrap(plan: Callable) -> Callable:
        if name in CROP_KINDS:
            raise ValueError(f"crop kind {name!r} is registered twice")
        if name in RESERVED_NAMES or not name.isidentifier() or name.endswith("_boxes") or name.startswith("lgca_"):
            raise ValueError(f"crop kind name {name!r} is taken or not a plain identifier (built-in: {', '.join(sorted(BUILT_IN_KINDS))})")
        CROP_KINDS[name] = CropKind(name, plan, config, (plan.__doc__ or "").strip().split("\n\n")[0], version)
        return plan

    return wrap


def image_kinds() -> frozenset[str]:
    """Every image feature kind a method may need: the built-in ones and the registered ones."""
    return BUILT_IN_KINDS | frozenset(CROP_KINDS)


def plan_boxes(kind: CropKind, width: int, height: int, config, image_id: str) -> torch.Tensor:
    """The kind's boxes for one image, checked: (N, 4) int64 inside the image, non-empty."""
    boxes = torch.as_tensor(kind.plan(width, height, config, image_id)).long().reshape(-1, 4)
    if not len(boxes) or (boxes[:, 0] < 0).any() or (boxes[:, 1] < 0).any() or (boxes[:, 2] > width).any() \
            or (boxes[:, 3] > height).any() or (boxes[:, 2] <= boxes[:, 0]).any() or (boxes[:, 3] <= boxes[:, 1]).any():
        raise ValueError(f"crop kind {kind.name!r}: boxes must be non-empty [x0, y0, x1, y1] inside the {width}x{height} image")
    return boxes


def kind_config_key(name: str) -> str:
    """The key a registered kind's config travels under in a run's extractor configs."""
    return f"kind:{name}"
