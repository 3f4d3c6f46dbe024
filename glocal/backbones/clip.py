"""CLIP (``transformers.CLIPModel``) adapter, and the base of the other ViT dual encoders.

Subclasses change only what differs: the model class, the text tower's call, how the vision tokens
are embedded and pooled (``_embed`` / ``_pool``), and the tokenizer's padding."""

from __future__ import annotations

import torch
from PIL import Image

from glocal.backbones.base import attach_model, normalise, register_backbone
from glocal.backbones.preprocess import PreprocessSpec, clip_preprocess

TEXT_BATCH = 256  # sentences per text-tower forward


class DualEncoder:
    """What every transformers dual-encoder adapter shares (CLIP, AltCLIP, SigLIP, GroupViT, ALIGN):
    loading the model class ``model_class`` with the preprocessing read off ``processor_class``,
    PIL preprocessing, and ``encode_text`` through the model's ``get_text_features`` (tokenise in
    batches, the model's text feature, normalise)."""

    model_class = "CLIPModel"  # the transformers class from_pretrained loads
    processor_class = "CLIPImageProcessor"  # its image processor, read for the preprocessing spec
    text_padding: bool | str = True  # tokenizer padding (SigLIP was trained on max_length padding)

    @classmethod
    def default_spec(cls, image_size: int) -> PreprocessSpec:
        """Preprocessing when the checkpoint has no preprocessor_config.json."""
        return PreprocessSpec(resize=image_size, crop=image_size)

    @classmethod
    def from_pretrained(cls, id_or_dir: str, device="cpu", dtype=torch.float32):
        import transformers
        from transformers import AutoTokenizer

        model = getattr(transformers, cls.model_class).from_pretrained(id_or_dir, dtype=dtype).to(device)
        tokenizer = AutoTokenizer.from_pretrained(id_or_dir)
        image_size = int(model.config.vision_config.image_size)
        try:
            processor = getattr(transformers, cls.processor_class).from_pretrained(id_or_dir)
            spec = PreprocessSpec.from_processor(processor, image_size)
        except (OSError, ValueError):  # no preprocessor_config.json: the family's defaults at the tower's size
            spec = cls.default_spec(image_size)
        return cls(model, tokenizer, spec, name=str(id_or_dir))

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return clip_preprocess(image, self.spec)

    @torch.inference_mode()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Tokenised once, then encoded shortest first in batches padded to their own longest
        sentence (or to ``max_length`` where the family pads so): CuPL's sentences average ~20 of
        CLIP's 77 tokens, so length-sorted batches carry ~2.5x fewer tokens than batches in file
        order. Padding is masked, so a sentence's feature does not depend on its batch."""
        if not texts:
            return torch.empty(0, self.embed_dim)
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_text_tokens)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = torch.empty(len(ids), self.embed_dim)
        for start in range(0, len(order), TEXT_BATCH):
            take = order[start : start + TEXT_BATCH]
            to_max = {"max_length": self.max_text_tokens} if self.text_padding == "max_length" else {}
            batch = self.tokenizer.pad({"input_ids": [ids[i] for i in take]}, padding=self.text_padding, return_tensors="pt",
                                       **to_max).to(self.device)
            out[take] = normalise(self._text_features(batch)).cpu()
        return out

    def _text_features(self, batch) -> torch.Tensor:
        return self.model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output

    def key_bias_mask(self, attention_bias: torch.Tensor, tokens: int) -> torch.Tensor:
        """(B, T) additive bias per key -> (B, 1, T, T) attention mask on the model's device, the
        layout both eager and SDPA attention take."""
        return attention_bias.to(self.device, self.dtype)[:, None, None, :].expand(-1, 1, tokens, tokens)


@register_backbone("clip", model_types=("clip",))
class CLIPBackbone(DualEncoder):
    family = "clip"
    num_prefix_tokens = 1  # CLS

    def __init__(self, model, tokenizer, spec: PreprocessSpec, name: str = "clip"):
        attach_model(self, model, tokenizer, spec, name)
        vision = model.config.vision_config
        self.grid = self.image_size // int(vision.patch_size)
        self.num_layers = int(vision.num_hidden_layers)
        self.embed_dim = int(getattr(model.config, "projection_dim", None) or model.config.text_config.hidden_size)
        self.max_text_tokens = self._max_text_tokens(model, tokenizer)

    @staticmethod
    def _max_text_tokens(model, tokenizer) -> int:
        return int(model.config.text_config.max_position_embeddings)

    # ------------------------------------------------------------------ images
    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.to(self.device, self.dtype)
        return normalise(self.model.get_image_features(pixel_values=pixels).pooler_output)  # the model's own path

    @torch.inference_mode()
    def tokens_before(self, pixels: torch.Tensor, layer: int) -> torch.Tensor:
        self._check_layer(layer)
        hidden = self._embed(pixels.to(self.device, self.dtype))
        for block in self.model.vision_model.encoder.layers[:layer]:
            hidden = block(hidden, None)
        return hidden

    def _embed(self, pixels: torch.Tensor) -> torch.Tensor:
        vision = self.model.vision_model
        return vision.pre_layrnorm(vision.embeddings(pixels))

    def _pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, P + g*g, W) after the last block -> (B, D) image embedding (not yet normalised)."""
        return self.model.visual_projection(self.model.vision_model.post_layernorm(hidden[:, 0]))

    @torch.inference_mode()
    def run_from(self, tokens: torch.Tensor, layer: int, attention_bias: torch.Tensor | None = None) -> torch.Tensor:
        self._check_layer(layer)
        vision = self.model.vision_model
        mask = None if attention_bias is None else self.key_bias_mask(attention_bias, tokens.shape[1])
        hidden = tokens.to(self.device, self.dtype)
        for block in vision.encoder.layers[layer:]:
            hidden = block(hidden, mask)
        return normalise(self._pool(hidden))

    @torch.inference_mode()
    def cls_attention(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, g, g): the last block's CLS-query attention over patches, head mean.

        Computed from the block's own projections, so it works under SDPA too."""
        last = self.num_layers - 1
        hidden = self.tokens_before(pixels, last)
        block = self.model.vision_model.encoder.layers[last]
        attn = block.self_attn
        x = block.layer_norm1(hidden)
        b, t, _ = x.shape
        q = attn.q_proj(x[:, :1]).view(b, 1, attn.num_heads, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(b, t, attn.num_heads, attn.head_dim).transpose(1, 2)
        weights = torch.softmax((q @ k.transpose(-1, -2)).float() * attn.scale, dim=-1)  # (B, h, 1, T)
        patches = weights[:, :, 0, self.num_prefix_tokens :].mean(dim=1)
        return patches.reshape(b, self.grid, self.grid).cpu()

    def _check_layer(self, layer: int) -> None:
        if not 0 <= layer <= self.num_layers:
            raise ValueError(f"layer {layer} out of range 0..{self.num_layers} for {self.name}")
