"""Image datasets on disk: a folder with class sub-folders, or a folder with a labels CSV
(``file,label[,classname]``). Image ids are relative paths: stable across reruns and machines.
Unreadable images are reported, not fatal."""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageRecord:
    image_id: str  # path relative to the dataset root
    path: Path
    label: int


class BadImage(Exception):
    """An image file that cannot be decoded; carries the reason to record."""


# glocal's own limit replaces Pillow's decompression-bomb check (a warning, or an exception that
# would abort a whole ingest): it is checked from the header, before any pixel is decoded, and an
# image over it is recorded as bad, never fatal.
Image.MAX_IMAGE_PIXELS = None
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
BACKGROUND = (255, 255, 255)  # transparent pixels are flattened onto white
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def max_image_pixels() -> int:
    """$GLOCAL_MAX_IMAGE_PIXELS, default 100 megapixels (a 12000 x 12000 image would take ~4 GB to encode)."""
    return int(os.environ.get("GLOCAL_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS))


def to_rgb(im: Image.Image) -> Image.Image:
    """The RGB image a photo shows: EXIF orientation applied, 16-bit greys scaled to 8 bits (not
    saturated), alpha flattened onto white (not dropped to whatever colour the hidden pixels hold)."""
    if im.getexif().get(0x0112, 1) != 1:  # orientation tag
        im = ImageOps.exif_transpose(im)
    if im.mode in _SIXTEEN_BIT or im.mode == "I" and im.getextrema()[1] > 255:
        im = Image.fromarray((np.clip(np.asarray(im, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or im.mode == "P" and "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba)
    return im.convert("RGB")


def open_image(path: str | os.PathLike | IO[bytes]) -> Image.Image:
    """Decode fully (so truncated files fail here, not later) and convert with ``to_rgb``. An
    image over ``max_image_pixels()`` is refused from its header, before decoding."""
    try:
        with Image.open(path) as im:
            limit = max_image_pixels()
            if im.width * im.height > limit:
                raise BadImage(f"{im.width}x{im.height} is {im.width * im.height / 1e6:.3g} megapixels, over the limit of "
                               f"{limit / 1e6:.3g} (GLOCAL_MAX_IMAGE_PIXELS)")
            im.load()
            return to_rgb(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"{type(exc).__name__}: {exc}") from None


def read_dataset(root: str | os.PathLike, labels_csv: str | os.PathLike | None = None) -> tuple[list[ImageRecord], list[str] | None]:
    """Records in a stable order, and the class names when the layout gives them.

    With a labels CSV (default: ``root/labels.csv`` when present): columns ``file`` and ``label``
    (and optionally ``classname``). Otherwise class sub-folders, sorted by name = label index.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    csv_path = Path(labels_csv) if labels_csv else root / "labels.csv"
    if csv_path.exists():
        return _read_labels_csv(root, csv_path)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(
            f"{root}: expected class sub-folders (root/<class>/<image>) or a labels.csv with "
            "columns file,label[,classname]"
        )
    records = []
    for label, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")):
            if path.is_file():
                records.append(ImageRecord(path.relative_to(root).as_posix(), path, label))
    return records, classes


def _read_labels_csv(root: Path, csv_path: Path) -> tuple[list[ImageRecord], list[str] | None]:
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"file", "label"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{csv_path}: missing column(s) {sorted(missing)}; expected file,label[,classname]")
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{csv_path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    records, names = [], {}
    for line, row in enumerate(rows, start=2):
        if not row.get("file") or row.get("label") is None:
            raise ValueError(f"{csv_path}:{line}: the row lacks a file or a label; every row needs file,label[,classname]")
        try:
            label = int(row["label"])
        except ValueError:
            raise ValueError(f"{csv_path}:{line}: label {row['label']!r} is not an integer") from None
        records.append(ImageRecord(row["file"], root / row["file"], label))
        if row.get("classname"):
            names[label] = row["classname"]
    classnames = None
    if names and sorted(names) == list(range(len(names))):
        classnames = [names[i] for i in range(len(names))]
    return records, classnames


def _plain(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name).strip().lower()


def folder_labels(folders: list[str], classnames: list[str], class_ids: list[str] | None = None) -> dict[str, int]:
    """Each class folder's label in ``classnames``: by id (``class_ids[i]`` is class i's folder
    name, e.g. ImageNet wnids), else by name (case, spaces and underscores aside), else a folder
    named by its label index. A folder that matches nothing is an error naming it and the remedy,
    never a silent positional guess (goldfish photos labelled tench)."""
    if class_ids is not None and len(class_ids) != len(classnames):
        raise ValueError(f"--class-ids has {len(class_ids)} ids for {len(classnames)} class names")
    by_id = {folder_id: i for i, folder_id in enumerate(class_ids or [])}
    by_name: dict[str, int] = {}
    for i, name in enumerate(classnames):
        by_name.setdefault(_plain(name), i)
    labels, unmatched = {}, []
    for folder in folders:
        if folder in by_id:
            labels[folder] = by_id[folder]
        elif _plain(folder) in by_name:
            labels[folder] = by_name[_plain(folder)]
        elif folder.isdigit() and int(folder) < len(classnames):
            labels[folder] = int(folder)
        else:
            unmatched.append(folder)
    if unmatched:
        raise ValueError(f"{len(unmatched)} of {len(folders)} class folder(s) match no class name: {unmatched[:5]}; name the folders by "
                         "class name or label index, or pass --class-ids FILE (a JSON list: the folder name of each class, in class order)")
    return labels


def listing_signature(path: str | os.PathLike) -> str:
    """What a folder (or one file) holds now: every file's relative path and the sha256 of its
    bytes, hashed. It changes when a file is added, removed, renamed or holds other bytes, even
    with its size and modification time put back. Costs one read of every file (about 1 s per
    GB on one core; ingest reads and hashes them anyway)."""
    import hashlib

    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as fh:
            content = hashlib.file_digest(fh, "sha256").hexdigest()
        digest.update(f"{file.relative_to(root) if file != root else file.name}\0{content}\n".encode())
    return digest.hexdigest()[:16]
