"""Augmented views (ZERO's, MTA's and AWT's): N ``RandomResizedCrop`` boxes of the original image, each
resized to the model's S x S (aspect not kept, bilinear, as torchvision's crop does) and flipped
where its draw says (``glocal.geometry.plans.view_plan``). The methods' first view, the original
image resized and centre-cropped, is the run's full-image feature. Stored as ``views`` (B, N, D)
and ``views_boxes`` (B, N, 5): the box and the flip.

The three methods draw their views with the same code in their official repositories, so one
kind serves them (its config is the ``ViewsConfig`` part of ``ZeroConfig`` / ``MTAConfig`` /
``AWTConfig``): a run of ZERO and MTA encodes the views once. The views of one image are one draw
stream, so a plan of N views is the first N of a longer one (``nested``): a run of ZERO (63 views)
and AWT (50) encodes 63, and AWT scores the first 50."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from PIL import Image

from glocal.backbones.preprocess import to_normalised_tensor
from glocal.config import ViewsConfig
from glocal.geometry.plans import view_plan
from glocal.geometry.tensor_crops import crop_pixels
from glocal.kinds.features import KindOutput
from glocal.kinds.registry import CropKind, ImageItem, KindEncoder, KindRun, add_crop_kind


def view_spec(spec):
    """The backbone's preprocessing for a view: the box resized to S x S, bilinear (torchvision's
    ``RandomResizedCrop`` default), the model's mean / std."""
    return dataclasses.replace(spec, resize=spec.crop, stretch=True, resample=Image.BILINEAR)


def pil_view(image: Image.Image, row: list[int], size: int) -> Image.Image:
    """One view on the PIL path (the reference): crop, resize to size x size bilinearly, flip."""
    x0, y0, x1, y1, flipped = row
    view = image.crop((x0, y0, x1, y1)).resize((size, size), resample=Image.BILINEAR)
    return view.transpose(Image.FLIP_LEFT_RIGHT) if flipped else view


@dataclass(frozen=True)
class AugmentedViews(CropKind):
    version: int | None = 1

    def reference(self, run: KindRun, images) -> KindOutput:
        spec = view_spec(run.backbone.spec)
        rows = [view_plan(im.width, im.height, run.config, image_id) for im, image_id in zip(images, run.image_ids)]
        features = []
        for image, plan in zip(images, rows):
            pixels = torch.stack([to_normalised_tensor(pil_view(image, row, spec.crop), spec.mean, spec.std) for row in plan.tolist()])
            features.append(torch.cat([run.backbone.encode_images(pixels[i : i + run.batch_size]).float().cpu()
                                       for i in range(0, len(pixels), run.batch_size)]))
        return KindOutput(torch.stack(features), {"views_boxes": rows})

    def encoder(self, run: KindRun) -> KindEncoder:
        return _ViewEncoder(run)


class _ViewEncoder(KindEncoder):
    """Cropped, resized and flipped here (not in the engine's shared crop call, which preprocesses
    boxes as whole images), then queued on the shared crop packer."""

    def __init__(self, run: KindRun):
        self.run, self.out, self.rows = run, None, []
        self.spec = view_spec(run.backbone.spec)

    def add(self, item: ImageItem, crops: torch.Tensor | None) -> None:
        plan = view_plan(item.width, item.height, self.run.config, item.image_id)
        if self.out is None:
            self.out = self.run.output(len(plan))
        pixels = crop_pixels(item.pixels, plan[:, :4], self.spec, batched=self.run.batched_crops)
        flipped = plan[:, 4].bool().to(pixels.device)
        pixels = torch.where(flipped[:, None, None, None], pixels.flip(-1), pixels)
        self.rows.append(plan)
        self.run.crops.add(pixels, self.out, item.index)

    def finish(self) -> KindOutput:
        return KindOutput(self.out, {"views_boxes": self.rows})


add_crop_kind(AugmentedViews("views", config=ViewsConfig, config_key="views_config", nested=True,
                             summary="ZERO's, MTA's and AWT's augmented views: random resized crops with flips"))
