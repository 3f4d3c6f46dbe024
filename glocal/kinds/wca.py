"""WCA's crop kind: N random square crops of the image (``glocal.geometry.plans.wca_boxes``), stored with ``wca_boxes``."""

from __future__ import annotations

from dataclasses import dataclass

from glocal.config import WCAConfig
from glocal.kinds.registry import BoxKind, add_crop_kind
from glocal.geometry.plans import wca_boxes


@dataclass(frozen=True)
class RandomCrops(BoxKind):
    version: int | None = None

    def boxes_of(self, run, image_id: str, width: int, height: int):
        return wca_boxes(width, height, run.config, image_id)


add_crop_kind(RandomCrops("wca", config=WCAConfig, config_key="wca_config", summary="WCA's random square crops"))
