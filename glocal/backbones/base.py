"""The backbone protocol and its registry.

A backbone is a dual encoder seen through five operations; methods never see the model, only the
normalised features these produce, so a new family (ALIGN, AltCLIP, GroupViT, SigLIP) is one new
adapter module and no change to any method.

Token layout: ``tokens_before`` returns ``(B, P + g*g, W)``: ``P`` prefix tokens (the CLS token
for CLIP; none for SigLIP) followed by the ``g x g`` patch grid in row-major order.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import torch
from PIL import Image


def attach_model(backbone, model, tokenizer, spec, name: str) -> None:
    """What every adapter's constructor sets the same way: the model in eval mode, tokenizer,
    preprocessing, name, input side, device and dtype; refuses a processor whose crop does not fit
    the tower."""
    backbone.model, backbone.tokenizer, backbone.spec, backbone.name = model.eval(), tokenizer, spec, name
    backbone.image_size = int(model.config.vision_config.image_size)
    param = next(model.parameters())
    backbone.device, backbone.dtype = param.device, param.dtype
    if spec.crop != backbone.image_size:
        raise ValueError(
            f"{name}: the image processor crops {spec.crop}px but the vision tower expects "
            f"{backbone.image_size}px; fix preprocessor_config.json"
        )


@runtime_checkable
class Backbone(Protocol):
    family: str
    image_size: int  # S: side of the square model input
    grid: int  # g: patch tokens per side
    num_layers: int  # transformer blocks in the vision tower
    num_prefix_tokens: int  # tokens before the patch grid (CLS)
    embed_dim: int  # D: joint embedding size
    device: torch.device
    dtype: torch.dtype

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> (3, S, S) float tensor, the model's own resize/crop/normalise."""

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """list of T strings -> (T, D) L2-normalised text features."""

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, D) L2-normalised image features."""

    def tokens_before(self, pixels: torch.Tensor, layer: int) -> torch.Tensor:
        """(B, 3, S, S) -> (B, P + g*g, W): hidden states at the input of block ``layer`` (0-based)."""

    def run_from(self, tokens: torch.Tensor, layer: int, attention_bias: torch.Tensor | None = None) -> torch.Tensor:
        """(B, P + g*g, W) at the input of block ``layer`` -> (B, D) normalised features.

        ``attention_bias``: optional (B, P + g*g) additive bias on the attention logits of each key
        token in every remaining block (the "highlight attention" ablation)."""


_BACKBONES: dict[str, Callable[..., Backbone]] = {}
_MODEL_TYPES: dict[str, list[str]] = {}  # model_type -> families, the most specific (registered last) first
_REFUSED: dict[str, str] = {}  # model_type -> why glocal cannot use it


def register_backbone(family: str, model_types: tuple[str, ...]):
    """Register an adapter class for a family and the transformers ``model_type`` values it loads.

    Two families may share a model_type (SigLIP 2's fixed-resolution checkpoints are ``siglip``
    weights): the one registered later is asked first whether it ``recognises`` a checkpoint."""

    def wrap(cls):
        _BACKBONES[family] = cls
        for model_type in model_types:
            _MODEL_TYPES.setdefault(model_type, []).insert(0, family)
        return cls

    return wrap


def refuse_model_type(model_type: str, why: str) -> None:
    """A transformers model_type that glocal knows and cannot use, with the reason and remedy."""
    _REFUSED[model_type] = why


def refusal(model_type: str) -> str | None:
    return _REFUSED.get(model_type)


def family_of(id_or_dir: str, model_type: str) -> str:
    """The registered family that loads a checkpoint of ``model_type``; ValueError naming the
    supported families (or why this model_type is refused)."""
    if model_type in _REFUSED:
        raise ValueError(f"{id_or_dir}: {_REFUSED[model_type]}")
    for family in _MODEL_TYPES.get(model_type, []):
        if getattr(_BACKBONES[family], "recognises", lambda _: True)(id_or_dir):
            return family
    raise ValueError(
        f"{id_or_dir}: model_type {model_type!r} has no glocal backbone adapter; "
        f"supported families: {', '.join(backbone_families())}"
    )


def backbone_families() -> list[str]:
    return sorted(_BACKBONES)


def load_backbone(
    id_or_dir: str,
    family: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Backbone:
    """Load a registered backbone with ``from_pretrained(id_or_dir)``; the family is read from the
    model's config unless given."""
    if family is None:
        from glocal.backbones.openclip import is_open_clip

        family = "open_clip" if is_open_clip(id_or_dir) else None
    if family is None:
        from transformers import AutoConfig

        family = family_of(id_or_dir, AutoConfig.from_pretrained(id_or_dir).model_type)
    try:
        cls = _BACKBONES[family]
    except KeyError:
        raise ValueError(f"unknown backbone family {family!r}; choose from {backbone_families()}") from None
    return cls.from_pretrained(id_or_dir, device=device, dtype=dtype)


def normalise(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)
