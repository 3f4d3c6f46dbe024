"""Model preprocessing with PIL (no torchvision), read off the model's transformers image processor:
resize the short side (CLIP, AltCLIP: bicubic, ``int()`` for the long side as the HF processor does)
or to a fixed square (SigLIP, ALIGN: aspect not kept), centre crop, then one affine map per channel
written as mean/std on [0, 1] values."""

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
    stretch: bool = False  # resize to resize x resize (aspect not kept) instead of the short side
    # where the centre crop starts: "floor", (H - S) // 2, as transformers' image processors crop;
    # "round", round((H - S) / 2) with halves to even, as torchvision's CenterCrop (OpenAI's clip,
    # open_clip, CLIP_benchmark and so the official ABS / WCA code) crops. They differ by one pixel
    # when H - S is odd and (H - S) // 2 is odd.
    crop_rounding: str = "floor"

    @classmethod
    def from_processor(cls, processor, default_size: int) -> "PreprocessSpec":
        """Read size / crop / mean / std / resample off a transformers image processor."""
        size = _as_dict(getattr(processor, "size", None))
        crop = _as_dict(getattr(processor, "crop_size", None))
        resize = size.get("shortest_edge") or size.get("height") or default_size
        stretch = "shortest_edge" not in size and "height" in size
        cropping = getattr(processor, "do_center_crop", True) and crop.get("height")
        crop_side = crop.get("height") if cropping else resize
        resample = getattr(processor, "resample", Image.BICUBIC)
        mean = tuple(float(v) for v in _triple(getattr(processor, "image_mean", None) or CLIP_MEAN))
        std = tuple(float(v) for v in _triple(getattr(processor, "image_std", None) or CLIP_STD))
        # out = a * x + b on x in [0, 1], composed from rescale (with EfficientNet's offset),
        # normalise, and EfficientNet's include_top second division by std
        scale = float(getattr(processor, "rescale_factor", 1 / 255)) * 255 if getattr(processor, "do_rescale", True) else 255.0
        a, b = [scale] * 3, [-1.0 if getattr(processor, "rescale_offset", False) else 0.0] * 3
        if getattr(processor, "do_normalize", True):
            a, b = [ai / si for ai, si in zip(a, std)], [(bi - mi) / si for bi, mi, si in zip(b, mean, std)]
        if getattr(processor, "include_top", False):
            a, b = [ai / si for ai, si in zip(a, std)], [bi / si for bi, si in zip(b, std)]
        return cls(
            resize=int(resize),
            crop=int(crop_side),
            mean=tuple(-bi / ai for ai, bi in zip(a, b)),
            std=tuple(1 / ai for ai in a),
            resample=int(getattr(resample, "value", resample)),
            stretch=stretch,
        )


def _triple(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * 3


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


CROP_ROUNDINGS = ("floor", "round")


def centre_offset(extent, size: int, rounding: str = "floor"):
    """Offset of a centre crop of ``size`` in ``extent`` pixels (an int or a NumPy int array):
    ``(extent - size) // 2`` ("floor") or ``round((extent - size) / 2)``, halves to even ("round",
    torchvision's ``CenterCrop``; NumPy's ``round`` is half-to-even too)."""
    if rounding == "floor":
        return (extent - size) // 2
    if rounding != "round":
        raise ValueError(f"unknown crop rounding {rounding!r}; choose from {', '.join(CROP_ROUNDINGS)}")
    if isinstance(extent, np.ndarray):
        return np.round((extent - size) / 2.0).astype(np.int64)
    return int(round((extent - size) / 2.0))


def centre_crop(image: Image.Image, size: int, rounding: str = "floor") -> Image.Image:
    w, h = image.size
    left, top = centre_offset(w, size, rounding), centre_offset(h, size, rounding)
    return image.crop((left, top, left + size, top + size))


def to_normalised_tensor(image: Image.Image, mean, std) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (tensor - mean_t) / std_t


def clip_preprocess(image: Image.Image, spec: PreprocessSpec) -> torch.Tensor:
    if spec.stretch:
        image = to_rgb(image).resize((spec.resize, spec.resize), resample=spec.resample)
    else:
        image = resize_short_side(to_rgb(image), spec.resize, spec.resample)
    return to_normalised_tensor(centre_crop(image, spec.crop, spec.crop_rounding), spec.mean, spec.std)


def stretch_preprocess(image: Image.Image, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """The whole image resized to ``size x size`` (aspect not kept), as DINO attention expects."""
    image = to_rgb(image).resize((size, size), resample=Image.BILINEAR)
    return to_normalised_tensor(image, mean, std)
