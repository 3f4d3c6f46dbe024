"""Raw-space views of a box (the ABS paper's Table 5 ablation): crop, mask, highlight, red circle.

Each function takes a PIL image and a pixel box ``(x0, y0, x1, y1)`` and returns the PIL image
that is then preprocessed and encoded like any crop.
"""

from __future__ import annotations

from typing import Callable

from PIL import Image, ImageDraw, ImageEnhance

HIGHLIGHT_BRIGHTNESS = 1.5  # the paper says "increases the brightness"; the factor is ours


def crop_view(image: Image.Image, box) -> Image.Image:
    return image.crop(tuple(int(v) for v in box))


def mask_view(image: Image.Image, box) -> Image.Image:
    """Pixels outside the box set to zero (black), the full frame kept."""
    out = Image.new("RGB", image.size, (0, 0, 0))
    box = tuple(int(v) for v in box)
    out.paste(image.crop(box), box[:2])
    return out


def highlight_view(image: Image.Image, box) -> Image.Image:
    """The box brightened by ``HIGHLIGHT_BRIGHTNESS``, the rest unchanged."""
    box = tuple(int(v) for v in box)
    out = image.copy()
    out.paste(ImageEnhance.Brightness(image.crop(box)).enhance(HIGHLIGHT_BRIGHTNESS), box[:2])
    return out


def red_circle_view(image: Image.Image, box) -> Image.Image:
    """A red ellipse inscribed in the box drawn on the full image (Shtedritski et al., 2023)."""
    out = image.copy()
    x0, y0, x1, y1 = (int(v) for v in box)
    width = max(2, min(image.size) // 100)
    ImageDraw.Draw(out).ellipse((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=(255, 0, 0), width=width)
    return out


RAW_AUGMENTS: dict[str, Callable[[Image.Image, tuple], Image.Image]] = {
    "crop": crop_view,
    "mask": mask_view,
    "highlight": highlight_view,
    "red_circle": red_circle_view,
}


def raw_augment(name: str) -> Callable[[Image.Image, tuple], Image.Image]:
    try:
        return RAW_AUGMENTS[name]
    except KeyError:
        raise ValueError(f"unknown raw augmentation {name!r}; choose from {sorted(RAW_AUGMENTS)}") from None
