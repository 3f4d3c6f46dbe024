"""MetaCLIP 2 (``transformers.MetaClip2Model``, model_type ``metaclip_2``): CLIP's towers and
pooling trained on worldwide data with a multilingual (XLM-V) tokenizer, so only the model class
differs from the CLIP adapter; its text tower pools at the first EOS token of the config's
``eos_token_id``, which the tokenizer's EOS must match."""

from __future__ import annotations

from glocal.backbones.base import register_backbone
from glocal.backbones.clip import CLIPBackbone


@register_backbone("metaclip2", model_types=("metaclip_2",))
class MetaClip2Backbone(CLIPBackbone):
    family = "metaclip2"
    model_class = "MetaClip2Model"
