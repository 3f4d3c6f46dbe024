"""Registered crop kinds: every kind of crop a method scores (ABS's raw crops and feature windows,
WCA's random crops, LGCA's steps, a plugin's own) is one ``CropKind`` in ``CROP_KINDS``. The
engine, the reference extractor, the feature keys, the encode stage's columns and the loader loop
over the kinds a run needs; none of them names a kind.

A kind declares:
- ``config``: the config class its method runs with, travelling under ``config_key`` (ABS's two
  kinds share ``abs_config``); ``inputs``: what else decides its crops ("attention": the image's
  attention map, "text": the class embeddings); ``version``: raised when its crops change with no
  config field changing, so stored features are recomputed, not reused as if equal;
- ``reference``: the plain per-image computation (PIL crops, the backbone's own preprocessing);
- ``encoder``: its part of the batched engine (``KindEncoder``'s hooks);
- ``stored`` / ``owns`` / ``load``: its Parquet columns (features and the geometry used).

The built-in kinds live in ``glocal.kinds`` (one module each; look kinds up there, it has imported
them all). A plugin whose crops are plain pixel boxes registers a planner with
``@register_crop_kind(name, config=...)``: one decorator in its own module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from PIL import Image

from glocal.geometry.augment import raw_augment
from glocal.backbones.encoding import encode_boxes
from glocal.kinds.features import KindOutput

KindFeatures = torch.Tensor | list[torch.Tensor]  # (B, N, D), or (LGCA) one (B, n_t, D) per step


@dataclass
class ImageItem:
    """One image as the engine holds it while its crops are planned and queued."""

    index: int  # its row in the batch
    image_id: str
    image: Image.Image  # RGB
    host_pixels: torch.Tensor  # (3, H, W) uint8 on the host
    pixels: torch.Tensor  # the same on the model's device
    width: int
    height: int


@dataclass
class KindRun:
    """What a kind computes from, on either path. ``shared`` lets kinds that plan together (ABS's
    raw and feat) plan once per image."""

    backbone: object
    config: object | None
    image_ids: list[str]
    attention_maps: torch.Tensor | None = None  # (B, g_a, g_a)
    attention_frame: str = "stretch"
    class_embeddings: torch.Tensor | None = None  # (C, D)
    batch_size: int = 64  # reference path: images / crops per encoder call
    shared: dict = field(default_factory=dict)
    # engine path: the crop and window packers (``glocal.encode.engine``), the output device, crop options
    crops: object = None
    windows: object = None
    batched_crops: bool | None = None

    def output(self, n: int) -> torch.Tensor:
        """(B, n, D) on the model's device, filled by the packers."""
        return torch.empty(len(self.image_ids), n, self.backbone.embed_dim, device=self.backbone.device)


class KindEncoder:
    """A kind's part of one engine pass, called image by image, then once at the end."""

    windows_per_image = 0  # feature windows cut from each whole image's tokens (engine batching)

    def boxes(self, item: ImageItem) -> torch.Tensor | None:
        """(n, 4) pixel boxes to crop in the engine's shared call for this image, or None."""
        return None

    def add(self, item: ImageItem, crops: torch.Tensor | None) -> None:
        """Queue this image's work; ``crops``: the preprocessed crops of ``boxes`` (n, 3, S, S)."""

    def tokens(self, index: int, tokens: torch.Tensor) -> None:
        """Image ``index``'s tokens before the feature layer (T, d), for windows on the grid."""

    def finish(self) -> KindOutput:
        """After every image is queued and the packers have run."""
        raise NotImplementedError


@dataclass(frozen=True)
class CropKind:
    name: str
    config: type | None = None  # the config class a method using this kind runs with (None: none)
    config_key: str = ""  # the key its config travels under in a run's configs ("" -> kind:<name>)
    # besides the config, what decides its crops: "attention" (the attention maps its config's
    # ``attention`` field names the source of) and / or "text" (the class text embeddings)
    inputs: frozenset[str] = frozenset()
    version: int | None = None  # part of the features' key when set
    summary: str = ""
    token_layer: bool = False  # True: its config's ``layer_id`` is the block the engine keeps tokens before
    # what one of its crops costs: "crop", a whole-tower forward; "window", a pass of the blocks
    # after the feature layer over the full image's tokens (``glocal.encode.cost``)
    passes: str = "crop"
    # True: a plan of N crops is the first N of any longer plan with otherwise equal config (one
    # draw stream), so methods asking for different counts share one encode of the longest; each
    # method scores the first ``n_crops`` of it
    nested: bool = False

    def __post_init__(self):
        if not self.config_key:
            object.__setattr__(self, "config_key", f"kind:{self.name}")

    def reference(self, run: KindRun, images: list[Image.Image]) -> KindOutput:
        raise NotImplementedError

    def encoder(self, run: KindRun) -> KindEncoder:
        raise NotImplementedError

    def stored(self, output: KindOutput) -> dict[str, torch.Tensor]:
        """Parquet columns: floating (B, N, D) features stored as float16, integer geometry as int32."""
        return {self.name: output.features, **{name: torch.stack(boxes) for name, boxes in output.boxes.items()}}

    def owns(self, column: str) -> bool:
        """Whether a stored column holds this kind's features."""
        return column == self.name

    def crops_per_image(self, config) -> int:
        """How many crops (or windows) per image ``config`` plans: what the memory budget counts
        before any compute. A config's ``n_crops`` by default."""
        return int(getattr(config, "n_crops", 0) or 0)

    def load(self, columns: dict[str, torch.Tensor]) -> KindFeatures:
        """Its features from the columns it owns, each (B, N, D)."""
        return columns[self.name]


CROP_KINDS: dict[str, CropKind] = {}
# stored columns that are not a kind's own name
RESERVED_NAMES = frozenset({"full", "image_id", "windows"})


def add_crop_kind(kind: CropKind) -> CropKind:
    if kind.name in CROP_KINDS or kind.name in RESERVED_NAMES or not kind.name.isidentifier() or kind.name.endswith("_boxes") \
            or any(other.owns(kind.name) for other in CROP_KINDS.values()):
        raise ValueError(f"crop kind name {kind.name!r} is taken or not a plain identifier (kinds: {', '.join(sorted(CROP_KINDS))})")
    CROP_KINDS[kind.name] = kind
    return kind


def image_kinds() -> frozenset[str]:
    """Every image feature kind a method may need: the whole image and the registered kinds
    (``glocal.kinds.image_kinds`` has the built-ins registered)."""
    return frozenset({"full"}) | frozenset(CROP_KINDS)


# ---- plugins: plain pixel boxes planned per image -------------------------------------------------


def plan_boxes(kind: "BoxKind", width: int, height: int, config, image_id: str) -> torch.Tensor:
    """The kind's boxes for one image, checked: (N, 4) int64 inside the image, non-empty."""
    boxes = torch.as_tensor(kind.plan(width, height, config, image_id)).long().reshape(-1, 4)
    if not len(boxes) or (boxes[:, 0] < 0).any() or (boxes[:, 1] < 0).any() or (boxes[:, 2] > width).any() \
            or (boxes[:, 3] > height).any() or (boxes[:, 2] <= boxes[:, 0]).any() or (boxes[:, 3] <= boxes[:, 1]).any():
        raise ValueError(f"crop kind {kind.name!r}: boxes must be non-empty [x0, y0, x1, y1] inside the {width}x{height} image")
    return boxes


def same_count(name: str, boxes: list[torch.Tensor], image_ids: list[str]) -> None:
    counts = [len(b) for b in boxes]
    if len(set(counts)) > 1:
        odd = next(i for i, n in enumerate(counts) if n != counts[0])
        raise ValueError(f"crop kind {name!r} planned {counts[odd]} boxes for {image_ids[odd]!r}, {counts[0]} before: "
                         "a kind plans the same number for every image")


@dataclass(frozen=True)
class BoxKind(CropKind):
    """Pixel boxes from ``plan(width, height, config, image_id) -> (N, 4)`` [x0, y0, x1, y1] in the
    original image (x1/y1 exclusive; N the same for every image; draws seeded from (seed,
    image_id, ...)), each cropped, preprocessed like a whole image and encoded. Stored as the
    features' column and ``<name>_boxes``."""

    plan: Callable | None = None
    version: int | None = 1

    def crops_per_image(self, config) -> int:
        if hasattr(config, "n_crops"):
            return int(config.n_crops)
        return len(plan_boxes(self, 224, 224, config, "budget"))  # a planner's count is the same for every image

    def boxes_of(self, run: KindRun, image_id: str, width: int, height: int) -> torch.Tensor:
        return plan_boxes(self, width, height, run.config, image_id)

    def reference(self, run: KindRun, images: list[Image.Image]) -> KindOutput:
        boxes = [self.boxes_of(run, image_id, im.width, im.height) for im, image_id in zip(images, run.image_ids)]
        same_count(self.name, boxes, run.image_ids)
        view = raw_augment("crop")
        features = torch.stack([encode_boxes(run.backbone, im, b, view, run.batch_size) for im, b in zip(images, boxes)])
        return KindOutput(features, {f"{self.name}_boxes": boxes})

    def encoder(self, run: KindRun) -> KindEncoder:
        return _BoxEncoder(self, run)


class _BoxEncoder(KindEncoder):
    def __init__(self, kind: BoxKind, run: KindRun):
        self.kind, self.run, self.out, self.boxes_per_image = kind, run, None, []

    def boxes(self, item: ImageItem) -> torch.Tensor:
        boxes = self.kind.boxes_of(self.run, item.image_id, item.width, item.height)
        if self.out is None:  # allocated at the first image, when N is known
            self.out = self.run.output(len(boxes))
        same_count(self.kind.name, self.boxes_per_image[:1] + [boxes], [self.run.image_ids[0], item.image_id])
        self.boxes_per_image.append(boxes)
        return boxes

    def add(self, item: ImageItem, crops: torch.Tensor | None) -> None:
        self.run.crops.add(crops, self.out, item.index)

    def finish(self) -> KindOutput:
        return KindOutput(self.out, {f"{self.kind.name}_boxes": self.boxes_per_image})


def register_crop_kind(name: str, *, config: type | None = None, version: int = 1,
                       kind: type[BoxKind] = BoxKind) -> Callable[[Callable], Callable]:
    """Decorator: register ``plan`` as a pixel-box crop kind ``name``; its features are
    ``features.need(name)`` (B, N, D) in the methods that declare ``image=(..., name)``."""

    def wrap(plan: Callable) -> Callable:
        add_crop_kind(kind(name, config=config, version=version, summary=(plan.__doc__ or "").strip().split("\n\n")[0], plan=plan))
        return plan

    return wrap

