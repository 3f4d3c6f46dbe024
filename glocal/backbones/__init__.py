"""Backbone adapters over transformers dual encoders, registered by family."""

from glocal.backbones.base import Backbone, backbone_families, load_backbone, normalise, register_backbone
from glocal.backbones import clip as _clip  # noqa: F401  (registers "clip")

__all__ = ["Backbone", "backbone_families", "load_backbone", "normalise", "register_backbone"]
