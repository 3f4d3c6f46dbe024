"""ABS's two crop kinds, planned together from the image's attention map (``glocal.geometry.plans.abs_plan``):

- ``raw``: N boxes in the image, cropped (or masked / highlighted / circled, ``raw_augment``) and encoded;
- ``feat``: the paired N windows on the backbone's token grid, cut from the tokens before block
  ``layer_id`` and run through the remaining blocks (``feature_augment``).
Both store ``raw_boxes``; ``feat`` also ``windows``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from glocal.geometry.augment import raw_augment
from glocal.config import ABSConfig
from glocal.kinds.registry import CropKind, ImageItem, KindEncoder, KindRun, add_crop_kind
from glocal.kinds.features import KindOutput
from glocal.backbones.encoding import encode_boxes, feature_layer
from glocal.geometry.feature_views import crop_windows_batched, feature_augment
from glocal.geometry.plans import ABSPlan, abs_plan, input_frame
from glocal.geometry.tensor_crops import to_device


def plan_for(run: KindRun, index: int, width: int, height: int) -> ABSPlan:
    """Image ``index``'s plan, made once for both kinds."""
    key = ("abs-plan", index)
    if key not in run.shared:
        run.shared[key] = abs_plan(run.attention_maps[index], width, height, run.backbone.grid, run.config, run.image_ids[index],
                                   run.attention_frame, **input_frame(run.backbone.spec))
    return run.shared[key]


@dataclass(frozen=True)
class RawCrops(CropKind):
    def reference(self, run: KindRun, images) -> KindOutput:
        plans = [plan_for(run, i, im.width, im.height) for i, im in enumerate(images)]
        view = raw_augment(run.config.raw_augment)
        features = torch.stack([encode_boxes(run.backbone, im, p.raw_boxes, view, run.batch_size) for im, p in zip(images, plans)])
        return KindOutput(features, {"raw_boxes": [p.raw_boxes for p in plans]})

    def encoder(self, run: KindRun) -> KindEncoder:
        return _RawEncoder(run)


class _RawEncoder(KindEncoder):
    """Plain crops join the engine's shared pixel crop; the other views go through PIL."""

    def __init__(self, run: KindRun):
        self.run, self.out, self.raw_boxes = run, run.output(run.config.n_crops), []
        self.in_tensors = run.config.raw_augment == "crop"
        self.view = None if self.in_tensors else raw_augment(run.config.raw_augment)

    def boxes(self, item: ImageItem) -> torch.Tensor | None:
        boxes = plan_for(self.run, item.index, item.width, item.height).raw_boxes
        self.raw_boxes.append(boxes)
        return boxes if self.in_tensors else None

    def add(self, item: ImageItem, crops: torch.Tensor | None) -> None:
        if not self.in_tensors:
            views = torch.stack([self.run.backbone.preprocess(self.view(item.image, b.tolist())) for b in self.raw_boxes[-1]])
            crops = to_device(views, self.run.backbone.device)  # packed with the device's crops
        self.run.crops.add(crops, self.out, item.index)

    def finish(self) -> KindOutput:
        return KindOutput(self.out, {"raw_boxes": self.raw_boxes})


@dataclass(frozen=True)
class FeatureWindows(CropKind):
    def reference(self, run: KindRun, images) -> KindOutput:
        plans = [plan_for(run, i, im.width, im.height) for i, im in enumerate(images)]
        backbone, batch_size = run.backbone, run.batch_size
        layer = feature_layer(backbone, run.config.layer_id)
        view = feature_augment(run.config.feature_augment)
        out = []
        for start in range(0, len(images), batch_size):
            pixels = torch.stack([backbone.preprocess(im) for im in images[start : start + batch_size]])
            tokens = backbone.tokens_before(pixels, layer)
            for i in range(tokens.shape[0]):
                views, bias = view(tokens[i], plans[start + i].windows, backbone.num_prefix_tokens, backbone.grid)
                feats = []
                for s in range(0, views.shape[0], batch_size):
                    chunk_bias = None if bias is None else bias[s : s + batch_size]
                    feats.append(backbone.run_from(views[s : s + batch_size], layer, chunk_bias).float().cpu())
                out.append(torch.cat(feats))
        return KindOutput(torch.stack(out), {"raw_boxes": [p.raw_boxes for p in plans], "windows": [p.windows for p in plans]})

    def encoder(self, run: KindRun) -> KindEncoder:
        return _WindowEncoder(run)


class _WindowEncoder(KindEncoder):
    """Windows are cut from the tokens of the engine's whole-image forward (no second forward)."""

    def __init__(self, run: KindRun):
        self.run, self.out, self.plans = run, run.output(run.config.n_crops), []
        self.windows_per_image = run.config.n_crops
        # the reference's per-window crop, batched (the other views are already)
        self.view = crop_windows_batched if run.config.feature_augment == "crop" else feature_augment(run.config.feature_augment)

    def boxes(self, item: ImageItem) -> None:
        self.plans.append(plan_for(self.run, item.index, item.width, item.height))

    def tokens(self, index: int, tokens: torch.Tensor) -> None:
        backbone = self.run.backbone
        views, bias = self.view(tokens, self.plans[index].windows, backbone.num_prefix_tokens, backbone.grid)
        self.run.windows.add(views, self.out, index, bias)

    def finish(self) -> KindOutput:
        return KindOutput(self.out, {"raw_boxes": [p.raw_boxes for p in self.plans], "windows": [p.windows for p in self.plans]})


add_crop_kind(RawCrops("raw", config=ABSConfig, config_key="abs_config", inputs=frozenset({"attention"}), token_layer=True,
                       summary="ABS raw-space crops: N boxes around attention-sampled centres"))
# version 2: paper-pairing windows mapped through the region the backbone's tokens cover
# (stretching backbones such as SigLIP and ALIGN), no longer always CLIP's centre square
add_crop_kind(FeatureWindows("feat", config=ABSConfig, config_key="abs_config", inputs=frozenset({"attention"}), version=2,
                             token_layer=True, passes="window", summary="ABS feature-space windows: the paired windows on the token grid"))
