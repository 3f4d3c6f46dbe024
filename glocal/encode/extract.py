"""The reference feature extractor: decoded images -> ImageFeatures for the requested methods.

Straightforward per-image code (PIL crops, the backbone's own preprocessing), batched only at the
encoder. It is the ground truth that faster engines are tested against, and what the pipeline's
encode stage calls on machines without a GPU.
"""

from __future__ import annotations

import torch
from PIL import Image

from glocal.backbones.preprocess import to_rgb
from glocal.backbones.encoding import encode_pil
from glocal.kinds.features import CropRecord, ImageFeatures
from glocal.kinds import kind_runs, kinds_for


def extract_features(
    backbone,
    images: list[Image.Image],
    image_ids: list[str],
    needs: set[str],
    *,
    attention_maps: torch.Tensor | None = None,
    attention_frame: str = "stretch",
    class_embeddings: torch.Tensor | None = None,
    batch_size: int = 64,
    **configs,
) -> tuple[ImageFeatures, CropRecord]:
    """Features for ``needs`` ("full" and any registered crop kinds) of B images; ``configs``:
    each kind's config under its config key (``abs_config=``, ``wca_config=``, ``lgca_config=``,
    ``**{"kind:<name>": ...}``).

    ``attention_maps`` (B, g_a, g_a) are required by the kinds planned from attention (ABS's),
    ``class_embeddings`` (C, D) by those chosen with the text (LGCA's saliency).
    """
    if len(images) != len(image_ids):
        raise ValueError(f"{len(images)} images but {len(image_ids)} ids")
    kinds = kinds_for(needs)
    runs = kind_runs(kinds, backbone, image_ids, configs, attention_maps, attention_frame, class_embeddings, batch_size)
    images = [to_rgb(im) for im in images]
    features, record = ImageFeatures(full=encode_pil(backbone, images, batch_size), image_ids=list(image_ids)), CropRecord(attention=attention_maps)
    for kind, run in zip(kinds, runs):
        output = kind.reference(run, images)
        features.crops[kind.name], record.outputs[kind.name] = output.features, output
    return features, record
