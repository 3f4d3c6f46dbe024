"""CLIP-style preprocessing with PIL (no torchvision): resize the short side (bicubic, ``int()``
for the long side as the HF processor does), centre crop, scale to [0, 1], mean/std."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessSpec:
    resize: int  # short side after resizing
    crop: int  # side of the centre crop (the model input S)
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resample: int = Image.BICUBIC

    @classmethod
    def from_processor(cls, processor, default_size: int) -> "PreprocessSpec":
        """Read size / crop / mean / std / resample off a transformers image processor."""
        size = _as_dict(getattr(processor, "size", None))
        crop = _as_dict(getattr(processor, "crop_size", None))
        resize = size.get("shortest_edge") or size.get("height") or default_size
        crop_side = crop.get("height") or resize
        resample = getattr(processor, "resample", Image.BICUBIC)
        return cls(
            resize=int(resize),
            crop=int(crop_side),
            mean=tuple(float(v) for v in (getattr(processor, "image_mean", None) or CLIP_MEAN)),
            std=tuple(float(v) for v in (getattr(processor, "image_std", None) or CLIP_STD)),
            resample=int(getattr(resample, "value", resample)),
        )


def _as_dict(value) -> dict:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    return {k: getattr(value, k) for k in ("shortest_edge", "height", "width") if getattr(value, k, None)}


def to_rgb(image: Image.Image) -> Image.Image:
    """Greyscale, palette, CMYK and alpha images all become 3-channel RGB."""
    return image if image.mode == "RGB" else image.convert("RGB")


def resize_short_side(image: Image.Image, size: int, resample: int) -> Image.Image:
    w, h = image.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    return image.resize((max(new_w, 1), max(new_h, 1)), resample=resample)


def centre_crop(image: Image.Image, size: int) -> Image.Image:
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_normalised_tensor(image: Image.Image, mean, std) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (tensor - mean_t) / std_t


def clip_preprocess(image: Image.Image, spec: PreprocessSpec) -> torch.Tensor:
    image = resize_short_side(to_rgb(image), spec.resize, spec.resample)
    return to_normalised_tensor(centre_crop(image, spec.crop), spec.mean, spec.std)


def stretch_preprocess(image: Image.Image, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """The whole image resized to ``size x size`` (aspect not kept), as DINO attention expects."""
    image = to_rgb(image).resize((size, size), resample=Image.BILINEAR)
    return to_normalised_tensor(image, mean, std)
