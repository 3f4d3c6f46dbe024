"""The reference feature extractor: decoded images -> ImageFeatures for the requested methods.

Straightforward per-image code (PIL crops, the backbone's own preprocessing), batched only at the
encoder. It is the ground truth that faster engines are tested against, and what the pipeline's
encode stage calls on machines without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from glocal.augment import raw_augment
from glocal.backbones.preprocess import to_rgb
from glocal.crop_kinds import CROP_KINDS, kind_config_key, plan_boxes
from glocal.config import ABSConfig, LGCAConfig, WCAConfig
from glocal.crops import grow_boxes
from glocal.feature_views import feature_augment
from glocal.features import ImageFeatures
from glocal.methods.lgca import crop_saliency
from glocal.plans import abs_plan, input_frame, wca_boxes


@dataclass
class CropRecord:
    """The geometry actually encoded, per image (for storage, pictures and tests)."""

    raw_boxes: list[torch.Tensor] = field(default_factory=list)  # (N, 4) per image
    windows: list[torch.Tensor] = field(default_factory=list)  # (N, 4) per image
    wca_boxes: list[torch.Tensor] = field(default_factory=list)
    lgca_boxes: list[list[torch.Tensor]] = field(default_factory=list)  # per image, per step
    kind_boxes: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # registered crop kinds: name -> (N, 4) per image
    attention: torch.Tensor | None = None  # (B, g_a, g_a)


def encode_pil(backbone, images: list[Image.Image], batch_size: int) -> torch.Tensor:
    """Preprocess each PIL image with the backbone's own pipeline and encode in batches."""
    out = []
    for start in range(0, len(images), batch_size):
        pixels = torch.stack([backbone.preprocess(im) for im in images[start : start + batch_size]])
        out.append(backbone.encode_images(pixels).float().cpu())
    return torch.cat(out) if out else torch.empty(0, backbone.embed_dim)


def encode_boxes(backbone, image: Image.Image, boxes: torch.Tensor, view, batch_size: int) -> torch.Tensor:
    return encode_pil(backbone, [view(image, box.tolist()) for box in boxes], batch_size)


def feature_layer(backbone, layer_id: int | None) -> int:
    """ABS's ``layer_id`` (the paper's 0-based Layer_id; None = the last block) -> the index of
    the block whose input tokens are cropped, checked against the tower's depth."""
    if layer_id is None:
        return backbone.num_layers - 1
    if not 0 <= layer_id < backbone.num_layers:
        raise ValueError(f"layer_id {layer_id} out of range 0..{backbone.num_layers - 1} (the paper's 0-based Layer_id; "
                         f"{backbone.num_layers - 1} = the last block)")
    return layer_id


def extract_features(
    backbone,
    images: list[Image.Image],
    image_ids: list[str],
    needs: set[str],
    *,
    abs_config: ABSConfig | None = None,
    wca_config: WCAConfig | None = None,
    lgca_config: LGCAConfig | None = None,
    attention_maps: torch.Tensor | None = None,
    attention_frame: str = "stretch",
    class_embeddings: torch.Tensor | None = None,
    batch_size: int = 64,
    **kind_configs,
) -> tuple[ImageFeatures, CropRecord]:
    """Features for ``needs`` (full/raw/feat/wca/lgca and registered crop kinds) of B images;
    ``kind_configs``: ``kind:<name>`` -> the config of each registered kind that has one.

    ``attention_maps`` (B, g_a, g_a) are required for raw/feat, ``class_embeddings`` (C, D) for
    lgca (its saliency is the best class similarity of a crop).
    """
    if len(images) != len(image_ids):
        raise ValueError(f"{len(images)} images but {len(image_ids)} ids")
    images = [to_rgb(im) for im in images]
    record = CropRecord(attention=attention_maps)
    full = encode_pil(backbone, images, batch_size)
    features = ImageFeatures(full=full)

    if needs & {"raw", "feat"}:
        if abs_config is None or attention_maps is None:
            raise ValueError("ABS crops need abs_config and attention_maps")
        plans = [
            abs_plan(attention_maps[i], im.width, im.height, backbone.grid, abs_config, image_ids[i], attention_frame,
                     **input_frame(backbone.spec))
            for i, im in enumerate(images)
        ]
        record.raw_boxes = [p.raw_boxes for p in plans]
        record.windows = [p.windows for p in plans]
        if "raw" in needs:
            view = raw_augment(abs_config.raw_augment)
            features.raw = torch.stack([encode_boxes(backbone, im, p.raw_boxes, view, batch_size) for im, p in zip(images, plans)])
        if "feat" in needs:
            features.feat = _encode_windows(backbone, images, [p.windows for p in plans], abs_config, batch_size)

    if "wca" in needs:
        if wca_config is None:
            raise ValueError("WCA crops need wca_config")
        record.wca_boxes = [wca_boxes(im.width, im.height, wca_config, image_ids[i]) for i, im in enumerate(images)]
        view = raw_augment("crop")
        features.wca = torch.stack([encode_boxes(backbone, im, b, view, batch_size) for im, b in zip(images, record.wca_boxes)])

    if "lgca" in needs:
        if lgca_config is None or class_embeddings is None:
            raise ValueError("LGCA crops need lgca_config and class_embeddings")
        steps, record.lgca_boxes = _lgca_steps(backbone, images, image_ids, lgca_config, class_embeddings, batch_size)
        features.lgca = steps

    for name in sorted(n for n in needs if n in CROP_KINDS):  # registered kinds: plain crops, encoded as images
        kind, config = CROP_KINDS[name], kind_configs.get(kind_config_key(name))
        record.kind_boxes[name] = [plan_boxes(kind, im.width, im.height, config, image_ids[i]) for i, im in enumerate(images)]
        if len({len(b) for b in record.kind_boxes[name]}) > 1:
            raise ValueError(f"crop kind {name!r} planned different numbers of boxes per image; a kind plans the same number for every image")
        view = raw_augment("crop")
        features.extra[name] = torch.stack([encode_boxes(backbone, im, b, view, batch_size) for im, b in zip(images, record.kind_boxes[name])])
    return features, record


def _encode_windows(backbone, images, windows: list[torch.Tensor], config: ABSConfig, batch_size: int) -> torch.Tensor:
    layer = feature_layer(backbone, config.layer_id)
    view = feature_augment(config.feature_augment)
    out = []
    for start in range(0, len(images), batch_size):
        pixels = torch.stack([backbone.preprocess(im) for im in images[start : start + batch_size]])
        tokens = backbone.tokens_before(pixels, layer)
        for i in range(tokens.shape[0]):
            views, bias = view(tokens[i], windows[start + i], backbone.num_prefix_tokens, backbone.grid)
            feats = []
            for s in range(0, views.shape[0], batch_size):
                chunk_bias = None if bias is None else bias[s : s + batch_size]
                feats.append(backbone.run_from(views[s : s + batch_size], layer, chunk_bias).float().cpu())
            out.append(torch.cat(feats))
    return torch.stack(out)


def _lgca_steps(backbone, images, image_ids, config: LGCAConfig, class_embeddings, batch_size):
    """Step 0: N0 WCA-geometry crops; steps 1..T: grow the K most salient boxes of the previous
    step by ``growth`` and encode them. Returns per-step features (B, n_t, D) and boxes."""
    view = raw_augment("crop")
    per_image_steps, per_image_boxes = [], []
    for image, image_id in zip(images, image_ids):
        boxes = wca_boxes(image.width, image.height, config, image_id, stream="lgca")
        feats = encode_boxes(backbone, image, boxes, view, batch_size)
        steps, step_boxes = [feats], [boxes]
        for _ in range(config.steps):
            saliency = crop_saliency(feats.unsqueeze(0), class_embeddings)[0]
            keep = torch.topk(saliency, min(config.top_k, len(saliency))).indices.sort().values
            boxes = grow_boxes(boxes[keep], config.growth, image.width, image.height)
            feats = encode_boxes(backbone, image, boxes, view, batch_size)
            steps.append(feats)
            step_boxes.append(boxes)
        per_image_steps.append(steps)
        per_image_boxes.append(step_boxes)
    stacked = [torch.stack([s[t] for s in per_image_steps]) for t in range(config.steps + 1)]
    return stacked, per_image_boxes
