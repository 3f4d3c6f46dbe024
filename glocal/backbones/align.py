"""ALIGN (``transformers.AlignModel``): an EfficientNet image tower, so "tokens" are the cells of a
convolutional feature map, flattened row-major, with no prefix (``P = 0``).

Block ``L`` (0-based) is an EfficientNet block; feature-space windows need one fixed grid, so
``tokens_before`` / ``run_from`` accept only the blocks that run at the final resolution (after
the last stride-2 block: ``min_feature_layer``), where the default (last block) lies. The image
embedding is the global average of the last map (ALIGN has no image projection). There is no
attention to bias: ``attention_bias`` (the highlight-attention ablation) is refused."""

from __future__ import annotations

import torch

from glocal.backbones.base import attach_model, normalise, register_backbone
from glocal.backbones.clip import DualEncoder
from glocal.backbones.preprocess import PreprocessSpec


@register_backbone("align", model_types=("align",))
class AlignBackbone(DualEncoder):
    family = "align"
    num_prefix_tokens = 0
    model_class = "AlignModel"
    processor_class = "EfficientNetImageProcessor"

    def __init__(self, model, tokenizer, spec: PreprocessSpec, name: str = "align"):
        attach_model(self, model, tokenizer, spec, name)
        blocks = model.vision_model.encoder.blocks
        self.num_layers = len(blocks)
        self.min_feature_layer = 1 + max((i for i, b in enumerate(blocks) if _stride(b) > 1), default=-1)
        self.embed_dim = int(model.config.projection_dim)
        self.max_text_tokens = int(model.config.text_config.max_position_embeddings)
        with torch.inference_mode():  # the final grid, from one forward of a blank image
            probe = self._map_before(torch.zeros(1, 3, self.image_size, self.image_size, device=self.device, dtype=self.dtype),
                                     self.num_layers)
        self.grid = int(probe.shape[-1])
        if probe.shape[-2] != probe.shape[-1]:
            raise ValueError(f"{name}: non-square final feature map {tuple(probe.shape[-2:])}")

    @classmethod
    def default_spec(cls, image_size: int) -> PreprocessSpec:
        return PreprocessSpec(resize=image_size, crop=image_size, mean=(0.5,) * 3, std=(0.5,) * 3, stretch=True)

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return normalise(self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype)).pooler_output)

    def _map_before(self, pixels: torch.Tensor, layer: int) -> torch.Tensor:
        vision = self.model.vision_model
        hidden = vision.embeddings(pixels)
        for block in vision.encoder.blocks[:layer]:
            hidden = block(hidden)
        return hidden

    @torch.inference_mode()
    def tokens_before(self, pixels: torch.Tensor, layer: int) -> torch.Tensor:
        self._check_layer(layer)
        fmap = self._map_before(pixels.to(self.device, self.dtype), layer)
        return fmap.flatten(2).transpose(1, 2)  # (B, C, g, g) -> (B, g*g, C)

    @torch.inference_mode()
    def run_from(self, tokens: torch.Tensor, layer: int, attention_bias: torch.Tensor | None = None) -> torch.Tensor:
        self._check_layer(layer)
        if attention_bias is not None:
            raise ValueError(f"{self.name}: ALIGN's image tower is convolutional; the highlight-attention ablation does not apply")
        b, t, c = tokens.shape
        hidden = tokens.to(self.device, self.dtype).transpose(1, 2).reshape(b, c, self.grid, self.grid)
        vision = self.model.vision_model
        for block in vision.encoder.blocks[layer:]:
            hidden = block(hidden)
        return normalise(vision.pooler(hidden).reshape(b, -1))

    def _check_layer(self, layer: int) -> None:
        if not self.min_feature_layer <= layer <= self.num_layers:
            raise ValueError(f"layer {layer} out of range {self.min_feature_layer}..{self.num_layers} for {self.name} "
                             "(feature-space crops need the blocks at the final resolution)")


def _stride(block) -> int:
    stride = getattr(block.depthwise_conv, "stride", 1)
    return int(stride[0] if isinstance(stride, (tuple, list)) else stride)
