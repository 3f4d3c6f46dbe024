"""What a method's accuracy costs per image, counted, not timed (#30): encoder forwards by kind and
analytical FLOPs from the image tower's shape, the same count as ``benchmarks/encode.py``.

Per method (as if it ran alone; kinds a run shares are encoded once, so a run costs less than the
sum of its methods):

- ``full``: 1, the whole image (every method);
- a crop kind: ``kind.crops_per_image(config)`` whole-tower forwards (ABS's raw crops, WCA's crops,
  LGCA's N0 + K x T, ZERO's / MTA's views), except
- a window kind (ABS's feature windows, ``CropKind.passes == "window"``): that many passes of the
  blocks after the feature layer (``layer_id``; the last block by default), on the full image's
  tokens;
- ``attention``: 1 forward of the attention model (DINO) when a kind plans from its maps; its FLOPs
  are not counted (another tower; ~the cost of one ViT-S/16 forward, 4.6 GFLOP at 224 px).

FLOPs: 2 x multiply-adds of the patch embedding and of each block (QKV and output projections, the
MLP, the two attention matmuls) on ``1 + g^2`` tokens, as ``benchmarks/encode.py`` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tower:
    """A ViT image tower's shape."""

    hidden: int  # d
    intermediate: int  # MLP width m
    layers: int
    patch: int
    image_size: int
    prefix: int = 1  # class token

    @property
    def tokens(self) -> int:
        g = self.image_size // self.patch
        return self.prefix + g * g

    def block_flops(self, blocks: int = 1) -> float:
        t, d, m = self.tokens, self.hidden, self.intermediate
        return blocks * (2 * t * d * 4 * d + 2 * t * d * m * 2 + 2 * 2 * t * t * d)

    def forward_flops(self) -> float:
        g = self.image_size // self.patch
        return self.block_flops(self.layers) + 2 * g * g * 3 * self.patch**2 * self.hidden


def tower_of(vision: dict) -> Tower:
    """From a transformers ``vision_config`` dict (or ``benchmarks/encode.py``'s ``TOWERS``)."""
    return Tower(int(vision["hidden_size"]), int(vision["intermediate_size"]), int(vision["num_hidden_layers"]),
                 int(vision["patch_size"]), int(vision["image_size"]))


def model_tower(model: str) -> Tower | None:
    """The image tower of a model argument, read off its config (no weights); None where glocal
    cannot count it (no ViT config: ALIGN's EfficientNet, open_clip's non-ViT trunks, a model that
    cannot be resolved here)."""
    try:
        from glocal.backbones.openclip import is_open_clip, model_config

        if is_open_clip(model):
            vision = model_config(model).get("vision_cfg", {})
            if not isinstance(vision.get("layers"), int) or vision.get("timm_model_name"):
                return None
            width = int(vision.get("width", 768))
            return Tower(width, int(width * vision.get("mlp_ratio", 4.0)), int(vision["layers"]), int(vision["patch_size"]),
                         int(vision["image_size"] if isinstance(vision["image_size"], int) else vision["image_size"][0]))
        from transformers import AutoConfig

        vision = AutoConfig.from_pretrained(model).vision_config.to_dict()
        return tower_of(vision)
    except Exception:  # noqa: BLE001 -- a tower glocal cannot count is reported as uncounted, never guessed
        return None


def method_cost(spec, config, tower: Tower | None, feature_layer: int | None = None) -> dict:
    """{"forwards": {kind: count}, "window_blocks": blocks per window pass, "attention_forwards",
    "gflop_per_image" (None without a countable tower)} for one method's config."""
    from glocal.kinds import kinds_for

    forwards: dict[str, float] = {"full": 1}
    window_blocks, attention = 0, 0
    for kind in kinds_for(spec.image_needs_for(config)):
        forwards[kind.name] = kind.crops_per_image(config)
        if kind.passes == "window":
            layers = tower.layers if tower else None
            layer = getattr(config, "layer_id", None)
            window_blocks = (layers - (layer if layer is not None else layers - 1)) if layers else 1
        if "attention" in kind.inputs:
            attention = 1
    flops = None
    if tower is not None:
        full_forwards = sum(n for name, n in forwards.items() if not _is_window(name))
        windows = sum(n for name, n in forwards.items() if _is_window(name))
        flops = full_forwards * tower.forward_flops() + windows * tower.block_flops(window_blocks)
    return {"forwards": forwards, "window_blocks": window_blocks, "attention_forwards": attention,
            "gflop_per_image": None if flops is None else flops / 1e9}


def _is_window(name: str) -> bool:
    from glocal.kinds import CROP_KINDS

    return name in CROP_KINDS and CROP_KINDS[name].passes == "window"
