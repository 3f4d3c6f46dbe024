"""GroupViT (``transformers.GroupViTModel``): a ViT whose later stages merge patches into groups, so
only the first stage keeps the patch grid. Its blocks are the ones exposed (``num_layers`` = the
first stage's depth; the default feature layer is that stage's last block, the deepest point with
a grid). Tokens are laid out as the protocol asks: the stage's learned group tokens first (the
prefix, ``P`` = their count, re-attached to every window as CLIP's CLS is) and the patch grid after;
GroupViT itself appends them, so ``run_from`` reorders before the remaining blocks, the grouping
and the later stages, then takes the model's own mean pool and projection."""

from __future__ import annotations

import torch

from glocal.backbones.base import normalise, register_backbone
from glocal.backbones.clip import CLIPBackbone
from glocal.backbones.preprocess import PreprocessSpec


@register_backbone("groupvit", model_types=("groupvit",))
class GroupViTBackbone(CLIPBackbone):
    family = "groupvit"
    model_class = "GroupViTModel"

    def __init__(self, model, tokenizer, spec: PreprocessSpec, name: str = "groupvit"):
        super().__init__(model, tokenizer, spec, name)
        first = model.vision_model.encoder.stages[0]
        self.num_layers = len(first.layers)
        self.num_prefix_tokens = int(first.num_group_token)

    def _groups(self, batch: int) -> torch.Tensor:
        return self.model.vision_model.encoder.stages[0].group_token.expand(batch, -1, -1)

    @torch.inference_mode()
    def tokens_before(self, pixels: torch.Tensor, layer: int) -> torch.Tensor:
        self._check_layer(layer)
        patches = self.model.vision_model.embeddings(pixels.to(self.device, self.dtype))
        hidden = torch.cat([patches, self._groups(len(patches))], dim=1)  # GroupViT's order
        for block in self.model.vision_model.encoder.stages[0].layers[:layer]:
            hidden = block(hidden, attention_mask=None)
        p = self.num_prefix_tokens
        return torch.cat([hidden[:, -p:], hidden[:, :-p]], dim=1)  # groups first: the protocol's prefix

    @torch.inference_mode()
    def run_from(self, tokens: torch.Tensor, layer: int, attention_bias: torch.Tensor | None = None) -> torch.Tensor:
        self._check_layer(layer)
        p = self.num_prefix_tokens
        tokens = tokens.to(self.device, self.dtype)
        hidden = torch.cat([tokens[:, p:], tokens[:, :p]], dim=1)
        mask = None
        if attention_bias is not None:  # reordered as the tokens are: groups last
            mask = self.key_bias_mask(torch.cat([attention_bias[:, p:], attention_bias[:, :p]], dim=1), hidden.shape[1])
        stages = self.model.vision_model.encoder.stages
        for block in stages[0].layers[layer:]:
            hidden = block(hidden, attention_mask=mask)
        x, groups = stages[0].split_x(hidden)
        if stages[0].downsample is not None:
            x, _ = stages[0].downsample(x, groups)
        for stage in stages[1:]:
            x, groups = stage(x, groups)[:2]
        pooled = self.model.vision_model.layernorm(x).mean(dim=1)
        return normalise(self.model.visual_projection(pooled))

    def cls_attention(self, pixels: torch.Tensor) -> torch.Tensor:
        raise ValueError(f"{self.name}: GroupViT has no CLS token; use DINO attention (--attention-model)")
