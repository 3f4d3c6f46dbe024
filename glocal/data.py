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

from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageRecord:
    image_id: str  # path relative to the dataset root
    path: Path
    label: int


class BadImage(Exception):
    """An image file that cannot be decoded; carries the reason to record."""


def open_image(path: str | os.PathLike | IO[bytes]) -> Image.Image:
    """Decode fully (so truncated files fail here, not later) and convert to RGB."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
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
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"file", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {sorted(missing)}; expected file,label[,classname]")
        rows = list(reader)
    records, names = [], {}
    for line, row in enumerate(rows, start=2):
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
