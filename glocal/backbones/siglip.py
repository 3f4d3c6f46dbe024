"""SigLIP (``transformers.SiglipModel``): no CLS token (``P = 0``); the image embedding is the
attention-pooling head over all tokens after the last block, so feature-space windows are pooled
by that head as the whole image is. Text is padded to the trained length (the head reads the last
position)."""

from __future__ import annotations

import torch
from PIL import Image

from glocal.backbones.base import register_backbone
from glocal.backbones.clip import CLIPBackbone
from glocal.backbones.preprocess import PreprocessSpec


@register_backbone("siglip", model_types=("siglip",))
class SiglipBackbone(CLIPBackbone):
    family = "siglip"
    num_prefix_tokens = 0
    model_class = "SiglipModel"
    processor_class = "SiglipImageProcessor"
    text_padding = "max_length"

    def __init__(self, model, tokenizer, spec: PreprocessSpec, name: str = "siglip"):
        if not getattr(model.config.vision_config, "vision_use_head", True):
            raise ValueError(f"{name}: SigLIP without the attention-pooling head has no image embedding")
        super().__init__(model, tokenizer, spec, name)
        self.embed_dim = int(model.config.vision_config.hidden_size)

    @classmethod
    def default_spec(cls, image_size: int) -> PreprocessSpec:
        return PreprocessSpec(resize=image_size, crop=image_size, mean=(0.5,) * 3, std=(0.5,) * 3,
                              resample=Image.BILINEAR, stretch=True)

    def _embed(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.vision_model.embeddings(pixels)

    def _pool(self, hidden: torch.Tensor) -> torch.Tensor:
        vision = self.model.vision_model
        return vision.head(vision.post_layernorm(hidden))

    def _text_features(self, batch) -> torch.Tensor:
        return self.model.get_text_features(input_ids=batch["input_ids"]).pooler_output

    def cls_attention(self, pixels: torch.Tensor) -> torch.Tensor:
        raise ValueError(f"{self.name}: SigLIP has no CLS token; use DINO attention (--attention-model)")
