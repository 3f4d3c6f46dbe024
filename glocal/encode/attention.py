"""Attention sources: where ABS centres its crops. Each returns ``(B, g_a, g_a)`` maps.

- ``dino``: a DINO ``ViTModel`` or ``Dinov2Model`` (eager attention), image stretched to 224x224
  with ImageNet mean/std, last block, CLS query row over the patch columns, mean over heads.
  ``g_a`` = 224 / patch: 14 for DINO B/16, 16 for DINOv2 S/14.
- ``clip``: the CLIP vision tower's own last-block CLS attention (on its centre crop).
- ``uniform``: a constant map; with the seeded tie-break of ``sample_centres`` this draws random
  centres (the paper's "random crop" row of Table 6).

``frame`` says which part of the image the map covers ("stretch": all of it; "center_crop": the
centred square CLIP sees), so that patch -> pixel mapping is right for each source.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Callable, Iterable, Iterator, Protocol

import torch
from PIL import Image

from glocal.backbones.preprocess import stretch_preprocess

DINO_INPUT = 224


def _batches(images: Iterable[Image.Image], size: int) -> Iterator[list[Image.Image]]:
    """Lists of up to ``size`` images; only one batch is held, so a streamed shard stays streamed."""
    source = iter(images)
    while batch := list(islice(source, size)):
        yield batch


def _stacked(maps: list[torch.Tensor], grid: int) -> torch.Tensor:
    return torch.cat(maps) if maps else torch.zeros(0, grid, grid)


class AttentionSource(Protocol):
    name: str
    frame: str
    grid: int

    def maps(self, images: Iterable[Image.Image]) -> torch.Tensor:
        """B PIL images (any iterable, consumed once, in batches) -> (B, g_a, g_a) float32 maps on the CPU."""


class DinoAttention:
    frame = "stretch"

    def __init__(self, model, name: str = "dino", batch_size: int = 32):
        self.model = model.eval()
        self.name = name
        self.batch_size = batch_size
        self.patch = int(model.config.patch_size)
        self.grid = DINO_INPUT // self.patch
        self.prefix = model.config.__dict__.get("num_register_tokens", 0) + 1
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        # ViTModel needs interpolated position encodings when its config size is not 224.
        self.forward_kwargs = {}
        if model.config.model_type == "vit" and int(model.config.image_size) != DINO_INPUT:
            self.forward_kwargs["interpolate_pos_encoding"] = True

    @classmethod
    def from_pretrained(cls, id_or_dir: str, device="cpu", dtype=torch.float32) -> "DinoAttention":
        from transformers import AutoConfig, AutoModel

        model_type = AutoConfig.from_pretrained(id_or_dir).model_type
        if model_type not in ("vit", "dinov2", "dinov2_with_registers"):
            raise ValueError(
                f"{id_or_dir}: model_type {model_type!r} is not a DINO/ViT attention model "
                "(expected vit, dinov2 or dinov2_with_registers)"
            )
        kwargs = {"add_pooling_layer": False} if model_type == "vit" else {}
        model = AutoModel.from_pretrained(id_or_dir, attn_implementation="eager", dtype=dtype, **kwargs)
        return cls(model.to(device), name=str(id_or_dir))

    @torch.inference_mode()
    def maps(self, images: Iterable[Image.Image]) -> torch.Tensor:
        out = []
        for batch in _batches(images, self.batch_size):
            pixels = torch.stack([stretch_preprocess(im, DINO_INPUT) for im in batch])
            result = self.model(
                pixel_values=pixels.to(self.device, self.dtype), output_attentions=True, **self.forward_kwargs
            )
            if not result.attentions:
                raise RuntimeError("the attention model returned no attention weights; load it with attn_implementation='eager'")
            last = result.attentions[-1].float()  # (B, heads, T, T)
            cls_row = last[:, :, 0, self.prefix :].mean(dim=1)  # CLS query over patch keys
            out.append(cls_row.reshape(-1, self.grid, self.grid).cpu())
        return _stacked(out, self.grid)


class ClipAttention:
    frame = "center_crop"

    def __init__(self, backbone, batch_size: int = 32):
        self.backbone = backbone
        self.name = f"clip-attention:{getattr(backbone, 'name', backbone.family)}"
        self.grid = backbone.grid
        self.batch_size = batch_size

    def maps(self, images: Iterable[Image.Image]) -> torch.Tensor:
        out = []
        for batch in _batches(images, self.batch_size):
            pixels = torch.stack([self.backbone.preprocess(im) for im in batch])
            out.append(self.backbone.cls_attention(pixels))
        return _stacked(out, self.grid)


class UniformAttention:
    frame = "stretch"

    def __init__(self, grid: int = 14):
        self.grid = grid
        self.name = f"uniform-{grid}"

    def maps(self, images: Iterable[Image.Image]) -> torch.Tensor:
        value = 1.0 / (self.grid * self.grid)
        return torch.full((sum(1 for _ in images), self.grid, self.grid), value)


@dataclass(frozen=True)
class AttentionKind:
    """A registered attention source: ``load(model, backbone, device)``; ``uses_model``: it loads
    its own model (``--attention-model``), ``uses_backbone``: it reads the scored backbone."""

    load: Callable[[str | None, object, str], AttentionSource]
    uses_model: bool = False
    uses_backbone: bool = False


# the ABS config's ``attention`` field names one of these
ATTENTION_SOURCES: dict[str, AttentionKind] = {
    "dino": AttentionKind(lambda model, backbone, device: DinoAttention.from_pretrained(model, device=device), uses_model=True),
    "clip": AttentionKind(lambda model, backbone, device: ClipAttention(backbone), uses_backbone=True),
    "uniform": AttentionKind(lambda model, backbone, device: UniformAttention()),
}


def load_attention_source(kind: str, *, model: str | None = None, backbone=None, device="cpu") -> AttentionSource:
    """``kind`` is the ``attention`` field of an ABS config: dino (needs ``model``), clip (needs the
    backbone: a loaded one, or a function that loads it) or uniform."""
    if kind not in ATTENTION_SOURCES:
        raise ValueError(f"unknown attention source {kind!r}; choose from {', '.join(ATTENTION_SOURCES)}")
    source = ATTENTION_SOURCES[kind]
    if source.uses_model and not model:
        raise ValueError(f"attention {kind!r} needs a DINO model id or directory (--attention-model)")
    if source.uses_backbone:
        backbone = backbone() if callable(backbone) else backbone
        if backbone is None or not hasattr(backbone, "cls_attention"):
            raise ValueError(f"attention {kind!r} needs a backbone that exposes cls_attention (CLIP)")
    return source.load(model, backbone, device)
