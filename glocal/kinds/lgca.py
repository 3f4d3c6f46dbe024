"""LGCA's crop kind: step 0 is N0 random square crops (WCA's geometry, its own seed stream); each
step t = 1..T grows the K most salient boxes of step t - 1 by ``growth`` (saliency: a crop's best
class similarity, so the class text embeddings decide the crops) and encodes them. Features: one
(B, n_t, D) tensor per step, stored as ``lgca_0`` … ``lgca_T``; the boxes are not stored."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from glocal.geometry.augment import raw_augment
from glocal.config import LGCAConfig
from glocal.kinds.registry import CropKind, ImageItem, KindEncoder, KindRun, add_crop_kind
from glocal.kinds.features import KindOutput
from glocal.geometry.crops import grow_boxes
from glocal.backbones.encoding import encode_boxes
from glocal.geometry.plans import wca_boxes
from glocal.geometry import tensor_crops
from glocal.geometry.tensor_crops import crop_pixels, to_device

STEP_COLUMN = re.compile(r"lgca_(\d+)")


def crop_saliency(crops: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
    """A crop's saliency = its best class similarity: (B, n, D), (C, D) -> (B, n)."""
    return torch.einsum("bnd,cd->bnc", crops, class_embeddings).amax(dim=-1)


def next_boxes(boxes: torch.Tensor, saliency: torch.Tensor, config: LGCAConfig, width: int, height: int) -> torch.Tensor:
    """(n, 4) boxes of one image, (n,) saliency -> the K most salient, grown, in their original order."""
    keep = torch.topk(saliency, min(config.top_k, len(saliency))).indices.sort().values
    return grow_boxes(boxes[keep], config.growth, width, height)


@dataclass(frozen=True)
class ProgressiveCrops(CropKind):
    def crops_per_image(self, config) -> int:
        return int(config.n_crops + config.top_k * config.steps)  # N0 local crops, then K per expansion step

    def reference(self, run: KindRun, images) -> KindOutput:
        config, view = run.config, raw_augment("crop")
        per_image_steps, per_image_boxes = [], []
        for image, image_id in zip(images, run.image_ids):
            boxes = wca_boxes(image.width, image.height, config, image_id, stream="lgca")
            feats = encode_boxes(run.backbone, image, boxes, view, run.batch_size)
            steps, step_boxes = [feats], [boxes]
            for _ in range(config.steps):
                boxes = next_boxes(boxes, crop_saliency(feats.unsqueeze(0), run.class_embeddings)[0], config, image.width, image.height)
                feats = encode_boxes(run.backbone, image, boxes, view, run.batch_size)
                steps.append(feats)
                step_boxes.append(boxes)
            per_image_steps.append(steps)
            per_image_boxes.append(step_boxes)
        stacked = [torch.stack([s[t] for s in per_image_steps]) for t in range(config.steps + 1)]
        return KindOutput(stacked, {"lgca_boxes": per_image_boxes})

    def encoder(self, run: KindRun) -> KindEncoder:
        return _StepEncoder(run)

    def stored(self, output: KindOutput) -> dict[str, torch.Tensor]:
        return {f"lgca_{t}": step for t, step in enumerate(output.features)}

    def owns(self, column: str) -> bool:
        return STEP_COLUMN.fullmatch(column) is not None

    def load(self, columns: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return [columns[name] for name in sorted(columns, key=lambda c: int(STEP_COLUMN.fullmatch(c).group(1)))]


class _StepEncoder(KindEncoder):
    """Step by step across all images, after the other kinds (a step's crops depend on the
    previous step's features); the images wait on the host (no copy back, no sync)."""

    def __init__(self, run: KindRun):
        self.run, self.images = run, []

    def add(self, item: ImageItem, crops: torch.Tensor | None) -> None:
        self.images.append((item.host_pixels, item.width, item.height))

    def finish(self) -> KindOutput:
        run, config, device = self.run, self.run.config, self.run.backbone.device
        boxes = [wca_boxes(w, h, config, image_id, stream="lgca") for (_, w, h), image_id in zip(self.images, run.image_ids)]
        steps, step_boxes = [], [[b] for b in boxes]
        for t in range(config.steps + 1):
            out = run.output(boxes[0].shape[0])
            for i, (pixels, _, _) in enumerate(self.images):
                run.crops.add(crop_pixels(to_device(pixels, device), boxes[i], run.backbone.spec, batched=run.batched_crops), out, i)
            run.crops.finish()
            steps.append(tensor_crops.to_host(out))
            if t == config.steps:
                break
            saliency = crop_saliency(steps[-1], run.class_embeddings)  # on the host: the next boxes are planned there
            boxes = [next_boxes(boxes[i], saliency[i], config, w, h) for i, (_, w, h) in enumerate(self.images)]
            for i, b in enumerate(boxes):
                step_boxes[i].append(b)
        return KindOutput(steps, {"lgca_boxes": step_boxes})


add_crop_kind(ProgressiveCrops("lgca", config=LGCAConfig, config_key="lgca_config", inputs=frozenset({"text"}),
                               summary="LGCA's progressive crops: random crops, then the most salient grown, step by step"))
