"""Where the demo finds its images: a given folder, else the shared ImageNet sample, else images it
draws itself (the text data is ``glocal.text.dataset_text``'s, as for any run)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from glocal.paths import SHARED_DATA

SHARED_SAMPLE = SHARED_DATA / "images" / "imagenet-sample"
SHARED_DINO = SHARED_DATA / "models" / "dinov2-small-imgfocus"
SYNTHETIC_CLASSES = ["red circle", "green square", "blue triangle"]


def generate_images(out_dir: Path, per_class: int = 4) -> Path:
    """A tiny labelled dataset of drawn shapes (class sub-folders), for machines with no images."""
    colours = {"red circle": (220, 30, 30), "green square": (30, 180, 60), "blue triangle": (40, 60, 220)}
    for index, name in enumerate(SYNTHETIC_CLASSES):
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            w, h = 96 + 16 * k, 80 + 8 * ((k + index) % 3)
            im = Image.new("RGB", (w, h), (235, 235, 225))
            d = ImageDraw.Draw(im)
            box = (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
            if "circle" in name:
                d.ellipse(box, fill=colours[name])
            elif "square" in name:
                d.rectangle(box, fill=colours[name])
            else:
                d.polygon([(w // 2, h // 5), (w // 5, 4 * h // 5), (4 * w // 5, 4 * h // 5)], fill=colours[name])
            im.save(folder / f"{k}.png")
    return out_dir
