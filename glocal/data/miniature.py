"""Miniature copies of the benchmark datasets' on-disk layouts: a few generated images each, the
annotation files the real downloads have, and the (image id -> label) their readers must return.
`glocal miniature --out DIR` writes a data root that `glocal reproduce` runs on offline (the
numbers mean nothing; every layout, stage and printout is exercised); the tests use the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

from PIL import Image

from glocal.paths import read_json, text_data

# dataset -> writer(folder, shared text data, image seeds, expected labels)
_BUILDERS: dict[str, Callable] = {}


def _builder(*datasets: str):
    def wrap(fn: Callable) -> Callable:
        for dataset in datasets:
            _BUILDERS[dataset] = fn
        return fn
    return wrap


def miniature_datasets() -> list[str]:
    return sorted(_BUILDERS)


def _image(path: Path, seed: int, grey: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = ((seed * 67) % 256, (seed * 131) % 256, (seed * 29) % 256)
    im = Image.new("RGB", (40 + seed % 7, 32 + seed % 5), colour)
    (im.convert("L") if grey else im).save(path, "JPEG")


def _class_file(shared: Path | None, name: str):
    """A class list: from ``shared`` (a folder laid out as glocal/text/data, plain JSON) when given,
    else glocal's own text data."""
    return json.loads((Path(shared) / "classnames" / name).read_text()) if shared else read_json(text_data(f"classnames/{name}"))


def _wnids(shared: Path | None) -> list[str]:
    return _class_file(shared, "imagenet_wnids.json")


def build(dataset: str, folder: Path, shared: Path) -> dict[str, int]:
    """Write a miniature ``dataset`` into ``folder``; returns the expected {image_id: label}."""
    if dataset not in _BUILDERS:
        raise ValueError(f"no miniature for {dataset!r}; datasets: {', '.join(miniature_datasets())}")
    expected: dict[str, int] = {}
    _BUILDERS[dataset](dataset, Path(folder), shared, iter(range(1, 10_000)), expected)
    return expected


@_builder("imagenet", "imagenet_sketch")
def _wnid_folders(dataset: str, folder: Path, shared: Path, seed: Iterator[int], expected: dict) -> None:
    wnids = _wnids(shared)
    for label in (0, 1, 999):
        for k in range(2):
            rel = f"{wnids[label]}/img_{k}.JPEG"
            _image(folder / rel, next(seed), grey=k == 1)
            expected[rel] = label


@_builder("imagenet_r", "imagenet_a")
def _subset_folders(dataset: str, folder: Path, shared: Path, seed: Iterator[int], expected: dict) -> None:
    wnids = _wnids(shared)
    subset = _class_file(shared, "imagenet_subsets.json")[dataset]
    for label in (subset[0], subset[5], subset[-1]):
        for k in range(2):
            rel = f"{wnids[label]}/{k}.jpg"
            _image(folder / rel, next(seed))
            expected[rel] = label


@_builder("imagenet_v2")
def _numbered_folders(dataset: str, folder: Path, shared: Path, seed: Iterator[int], expected: dict) -> None:
    for label in (0, 2, 10, 999):  # "10" sorts before "2" as text: labels must come from the number
        rel = f"{label}/abc{label}.jpeg"
        _image(folder / rel, next(seed))
        expected[rel] = label


@_builder("cub")
def _cub(dataset: str, folder: Path, shared: Path, seed: Iterator[int], expected: dict) -> None:
    rows, labels, split = [], [], []
    for image_id, (cls, train) in enumerate([(1, 0), (1, 1), (2, 0), (200, 0), (200, 1)], start=1):
        rel = f"{cls:03d}.Bird_{cls}/Bird_{image_id}.jpg"
        _image(folder / "images" / rel, next(seed))
        rows.append(f"{image_id} {rel}")
        labels.append(f"{image_id} {cls}")
        split.append(f"{image_id} {train}")
        if not train:
            expected[f"images/{rel}"] = cls - 1
    (folder / "images.txt").write_text("\n".join(rows) + "\n")
    (folder / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (folder / "train_test_split.txt").write_text("\n".join(split) + "\n")


@_builder("pets")
def _pets(dataset: str, folder: Path, shared: Path, seed: Iterator[int], expected: dict) -> None:
    lines = []
    for name, cls in [("Abyssinian_1", 1), ("american_bulldog_3", 2), ("yorkshire_terrier_9", 37)]:
        _image(folder / "images" / f"{name}.jpg", next(seed))
        lines.append(f"{name} {cls} 1 1")
        expected[f"images/{name}.jpg"] = cls - 1
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    (folder / "annotations" / "test.txt").write_text("\n".join(lines) + "\n")
    (folder / "annotations" / "trainval.txt").write_text("Abyssinian_2 1 1 1\n")


@_builder("dtd")
def _dtd(dataset: str, folder: Path, shared: Path, seed: Iterator[int], expected: dict) -> None:
    lines = []
    for category, label in [("banded", 0), ("polka-dotted", 30), ("zigzagged", 46)]:
        rel = f"{category}/{category}_0001.jpg"
        _image(folder / "images" / rel, next(seed))
        lines.append(rel)
        expected[f"images/{rel}"] = label
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    (folder / "labels" / "test1.txt").write_text("\n".join(lines) + "\n")
    (folder / "labels" / "train1.txt").write_text("banded/banded_0002.jpg\n")


@_builder("food101")
def _food101(dataset: str, folder: Path, shared: Path, seed: Iterator[int], expected: dict) -> None:
    classes = _class_file(shared, "food101.json")
    folders = [c.replace(" ", "_") for c in classes]
    (folder / "meta").mkdir(parents=True, exist_ok=True)
    (folder / "meta" / "classes.txt").write_text("\n".join(folders) + "\n")
    lines = []
    for label in (0, 1, 100):
        rel = f"{folders[label]}/{1000 + label}"
        _image(folder / "images" / f"{rel}.jpg", next(seed))
        lines.append(rel)
        expected[f"images/{rel}.jpg"] = label
    (folder / "meta" / "test.txt").write_text("\n".join(lines) + "\n")


@_builder("places365")
def _places365(dataset: str, folder: Path, shared: Path, seed: Iterator[int], expected: dict) -> None:
    lines = []
    for n, label in enumerate((0, 164, 364), start=1):
        name = f"Places365_val_{n:08d}.jpg"
        _image(folder / "val_256" / name, next(seed))
        lines.append(f"{name} {label}")
        expected[f"val_256/{name}"] = label
    (folder / "places365_val.txt").write_text("\n".join(lines) + "\n")


def build_flat_imagenet(folder: Path, shared: Path, form: str) -> dict[str, int]:
    """The flat val folder with labels in LOC_val_solution.csv (``form="loc"``) or val.txt."""
    wnids = _wnids(shared)
    expected, rows = {}, []
    for n, label in enumerate((0, 500, 999), start=1):
        stem = f"ILSVRC2012_val_{n:08d}"
        _image(folder / "val" / f"{stem}.JPEG", n)
        expected[f"{stem}.JPEG"] = label
        rows.append((stem, label))
    if form == "loc":
        text = "ImageId,PredictionString\n" + "".join(f"{s},{wnids[lab]} 1 2 3 4 {wnids[lab]} 5 6 7 8\n" for s, lab in rows)
        (folder / "LOC_val_solution.csv").write_text(text)
    else:
        (folder / "val" / "val.txt").write_text("".join(f"{s}.JPEG {lab}\n" for s, lab in rows))
    return expected


def build_data_root(root: Path, shared: Path, datasets: list[str] | None = None) -> dict[str, Path]:
    """Every miniature (or ``datasets``) under ``root`` in the folder `glocal reproduce` looks for
    first; returns dataset -> folder."""
    from glocal.data.datasets import LAYOUTS

    written = {}
    for dataset in datasets or miniature_datasets():
        folder = Path(root) / LAYOUTS[dataset].folders[0]
        build(dataset, folder, shared)
        written[dataset] = folder
    return written
