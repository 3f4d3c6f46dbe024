"""Per-process model caches: a worker loads each model once and reuses it across shards."""

from __future__ import annotations

from functools import lru_cache

from glocal.attention import DinoAttention, UniformAttention, ClipAttention
from glocal.backbones import load_backbone


@lru_cache(maxsize=4)
def backbone(model: str):
    return load_backbone(model)


@lru_cache(maxsize=4)
def attention_source(kind: str, model: str | None, backbone_model: str):
    if kind == "dino":
        return DinoAttention.from_pretrained(model)
    if kind == "clip":
        return ClipAttention(backbone(backbone_model))
    if kind == "uniform":
        return UniformAttention()
    raise ValueError(f"unknown attention source {kind!r}; choose from dino, clip, uniform")
