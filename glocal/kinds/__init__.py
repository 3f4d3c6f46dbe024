"""The crop kinds, looked up here: importing this package registers the built-in ones (one module
each), so ``CROP_KINDS`` is complete for every kind glocal ships (``TEXT_KINDS``, re-exported here,
is the text kinds' registry in ``glocal.text.kinds``, which registers the built-in text kinds);
plugins add theirs with ``glocal.kinds.registry.register_crop_kind`` / ``glocal.text.kinds.register_text_kind``."""

from __future__ import annotations

import torch

from glocal.kinds.registry import CROP_KINDS, CropKind, KindRun, image_kinds
from glocal.backbones.encoding import feature_layer
from glocal.plugins import load_plugins
from glocal.text.kinds import TEXT_KINDS, text_kinds
# registers the built-in kinds, in the engine's queue order (LGCA's steps after every other crop)
from glocal.kinds import abs_crops, wca, views, bifta  # noqa: F401, I001
from glocal.kinds import lgca  # noqa: F401, E402


def kinds_for(needs) -> list[CropKind]:
    """The registered kinds among ``needs``, in registration order (the engine's queue order)."""
    load_plugins()
    return [kind for name, kind in CROP_KINDS.items() if name in needs]


def kind_runs(kinds: list[CropKind], backbone, image_ids: list[str], configs: dict, attention_maps: torch.Tensor | None,
              attention_frame: str, class_embeddings: torch.Tensor | None, batch_size: int = 64) -> list[KindRun]:
    """One ``KindRun`` per kind (sharing one per-image plan memo), each checked for what it needs
    before any compute. ``configs``: config key -> config."""
    shared: dict = {}
    runs = []
    for kind in kinds:
        config = configs.get(kind.config_key)
        missing = [what for what, absent in (
            (f"its {getattr(kind.config, '__name__', '')} ({kind.config_key})", kind.config is not None and config is None),
            ("attention maps", "attention" in kind.inputs and attention_maps is None),
            ("class embeddings", "text" in kind.inputs and class_embeddings is None)) if absent]
        if missing:
            raise ValueError(f"{kind.name!r} crops need {' and '.join(missing)}")
        runs.append(KindRun(backbone, config, image_ids, attention_maps, attention_frame, class_embeddings, batch_size, shared))
    return runs


def token_layer(backbone, kinds: list[CropKind], configs: dict) -> int:
    """The block whose input tokens the engine keeps from the whole-image forward: the layer_id
    of the kinds that cut windows from them (ABS), else the last block."""
    layer_ids = {configs[kind.config_key].layer_id for kind in kinds if kind.token_layer and kind.config_key in configs}
    return feature_layer(backbone, layer_ids.pop() if layer_ids else None)


def kind_by_config_key(key: str) -> CropKind:
    """The kind whose config travels under ``key`` (ABS's two kinds share theirs)."""
    load_plugins()
    kind = next((kind for kind in CROP_KINDS.values() if kind.config_key == key), None)
    if kind is None:  # a plugin registered where the run was planned but not where it runs
        raise ValueError(f"no registered crop kind takes the config {key!r} here; kinds: {', '.join(CROP_KINDS)} "
                         "(name the plugin's module in GLOCAL_PLUGINS where the workers run too)")
    return kind


def text_guided(needs) -> bool:
    """Whether any of these kinds chooses its crops with the class text embeddings (LGCA's
    saliency): a new description set changes those features, and only those are re-encoded."""
    return any("text" in kind.inputs for kind in kinds_for(needs))


__all__ = ["CROP_KINDS", "TEXT_KINDS", "image_kinds", "text_kinds", "kinds_for", "kind_by_config_key", "kind_runs", "text_guided", "token_layer"]
