"""Encoding helpers shared by the reference extractor and the kinds' reference paths: PIL images
and crops through the backbone's own preprocessing, and ABS's feature layer."""

from __future__ import annotations

import torch
from PIL import Image


def encode_pil(backbone, images: list[Image.Image], batch_size: int) -> torch.Tensor:
    """Preprocess each PIL image with the backbone's own pipeline and encode in batches -> (n, D) on the host."""
    out = []
    for start in range(0, len(images), batch_size):
        pixels = torch.stack([backbone.preprocess(im) for im in images[start : start + batch_size]])
        out.append(backbone.encode_images(pixels).float().cpu())
    return torch.cat(out) if out else torch.empty(0, backbone.embed_dim)


def encode_boxes(backbone, image: Image.Image, boxes: torch.Tensor, view, batch_size: int) -> torch.Tensor:
    """(N, 4) boxes of one image, each through ``view(image, box)`` -> (N, D)."""
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
