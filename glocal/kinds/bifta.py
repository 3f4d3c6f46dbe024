"""BiFTA's crop kind: WCA's random square crops, IoU-filtered per image
(``glocal.geometry.plans.bifta_boxes``). An image keeps K <= ``max_kept`` of them, so the stored
``bifta`` features are (B, max_kept, D) with the K kept crops first and zero rows after (a zero
row is no crop: real features are unit vectors), and ``bifta_boxes`` (B, max_kept, 4) the same
way. Only kept crops are encoded (the official code also encodes its zero-image padding)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from glocal.backbones.encoding import encode_boxes
from glocal.config import BiFTAConfig
from glocal.geometry.augment import raw_augment
from glocal.geometry.plans import bifta_boxes
from glocal.kinds.features import KindOutput
from glocal.kinds.registry import CropKind, ImageItem, KindEncoder, KindRun, add_crop_kind


def padded(rows: torch.Tensor, size: int) -> torch.Tensor:
    """(K, ...) -> (size, ...) with zero rows after the K."""
    out = rows.new_zeros((size, *rows.shape[1:]))
    out[: len(rows)] = rows
    return out


@dataclass(frozen=True)
class FilteredCrops(CropKind):
    version: int | None = 1

    def crops_per_image(self, config) -> int:
        return min(config.n_crops, config.max_kept)  # at most: the filter keeps K of them

    def reference(self, run: KindRun, images: list[Image.Image]) -> KindOutput:
        size = self.crops_per_image(run.config)
        boxes = [bifta_boxes(im.width, im.height, run.config, image_id) for im, image_id in zip(images, run.image_ids)]
        features = torch.stack([padded(encode_boxes(run.backbone, im, b, raw_augment("crop"), run.batch_size), size)
                                for im, b in zip(images, boxes)])
        return KindOutput(features, {"bifta_boxes": [padded(b, size) for b in boxes]})

    def encoder(self, run: KindRun) -> KindEncoder:
        return _FilteredEncoder(self, run)


class _FilteredEncoder(KindEncoder):
    def __init__(self, kind: FilteredCrops, run: KindRun):
        self.run, self.boxes_per_image = run, []
        self.size = kind.crops_per_image(run.config)
        # zeros: the rows past an image's kept crops stay empty
        self.out = torch.zeros(len(run.image_ids), self.size, run.backbone.embed_dim, device=run.backbone.device)

    def boxes(self, item: ImageItem) -> torch.Tensor:
        boxes = bifta_boxes(item.width, item.height, self.run.config, item.image_id)
        self.boxes_per_image.append(padded(boxes, self.size))
        return boxes

    def add(self, item: ImageItem, crops: torch.Tensor | None) -> None:
        self.run.crops.add(crops, self.out, item.index)

    def finish(self) -> KindOutput:
        return KindOutput(self.out, {"bifta_boxes": self.boxes_per_image})


add_crop_kind(FilteredCrops("bifta", config=BiFTAConfig, config_key="bifta_config",
                            summary="BiFTA's random square crops, IoU-filtered"))
