"""SigLIP 2 at a fixed resolution. Its released checkpoints (``google/siglip2-*-patchP-SIZE``) are
``SiglipModel`` weights (model_type ``siglip``) with the Gemma tokenizer; what differs from SigLIP
is the text: the paper transforms it "to lower case before tokenization" (64 tokens), and the
checkpoints' ``tokenizer_config.json`` names ``GemmaTokenizer``, which does not lowercase, so the
adapter does. A checkpoint is SigLIP 2 when its tokenizer is Gemma's (or ``Siglip2Tokenizer``).

The NaFlex variants (model_type ``siglip2``) are refused: they take a variable patch grid per image
(aspect kept, patch count capped), while every crop method here cuts one square g x g grid shared
by all views of an image."""

from __future__ import annotations

import json

import torch

from glocal.backbones.base import refuse_model_type, register_backbone
from glocal.backbones.siglip import SiglipBackbone

GEMMA_TOKENIZERS = ("GemmaTokenizer", "GemmaTokenizerFast", "Siglip2Tokenizer")

refuse_model_type(
    "siglip2",
    "a SigLIP 2 NaFlex checkpoint (variable resolution: a patch grid per image's aspect) cannot be cut into "
    "the square token grid glocal's crop methods share; use a fixed-resolution one (google/siglip2-base-patch16-224 "
    "and the other *-patchP-SIZE checkpoints)",
)


@register_backbone("siglip2", model_types=("siglip",))
class Siglip2Backbone(SiglipBackbone):
    family = "siglip2"

    @classmethod
    def recognises(cls, id_or_dir: str) -> bool:
        """A ``siglip`` checkpoint whose tokenizer is Gemma's."""
        from transformers.utils import cached_file

        try:
            path = cached_file(id_or_dir, "tokenizer_config.json", _raise_exceptions_for_missing_entries=False)
        except OSError:
            return False
        if path is None:
            return False
        with open(path, encoding="utf-8") as fh:
            return json.load(fh).get("tokenizer_class") in GEMMA_TOKENIZERS

    @torch.inference_mode()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return super().encode_text([text.lower() for text in texts])
