"""Backbone adapters over transformers dual encoders, registered by family."""

from glocal.backbones.base import Backbone, backbone_families, load_backbone, normalise, register_backbone
from glocal.backbones import align as _align  # noqa: F401  (registers "align")
from glocal.backbones import altclip as _altclip  # noqa: F401  (registers "altclip")
from glocal.backbones import clip as _clip  # noqa: F401  (registers "clip")
from glocal.backbones import groupvit as _groupvit  # noqa: F401  (registers "groupvit")
from glocal.backbones import metaclip2 as _metaclip2  # noqa: F401  (registers "metaclip2")
from glocal.backbones import openclip as _openclip  # noqa: F401  (registers "open_clip"; open_clip itself imported on use)
from glocal.backbones import siglip as _siglip  # noqa: F401  (registers "siglip")
from glocal.backbones import siglip2 as _siglip2  # noqa: F401  (registers "siglip2"; after siglip: asked first)

__all__ = ["Backbone", "backbone_families", "load_backbone", "normalise", "register_backbone"]
