"""AltCLIP (``transformers.AltCLIPModel``): CLIP's vision tower with an XLM-R text tower, so only
the model class and the usable text length differ from the CLIP adapter."""

from __future__ import annotations

from glocal.backbones.base import register_backbone
from glocal.backbones.clip import CLIPBackbone


@register_backbone("altclip", model_types=("altclip",))
class AltCLIPBackbone(CLIPBackbone):
    family = "altclip"
    model_class = "AltCLIPModel"

    @staticmethod
    def _max_text_tokens(model, tokenizer) -> int:
        # RoBERTa positions start after the padding index: max_position_embeddings - pad - 1 usable
        text = model.config.text_config
        return int(text.max_position_embeddings) - int(text.pad_token_id or 0) - 1
