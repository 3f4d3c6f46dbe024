"""Readers for the papers' benchmark datasets in the on-disk layouts their downloads unpack to.

Each reader takes the dataset's own folder and returns a :class:`Benchmark`: (image, label)
records, the class names in label order (from the text data's ``classnames/<id>.json``) and, for
ImageNet-R and -A, the 200 ImageNet classes that are scored. Those two keep ImageNet's 1000-class
label space and text: at scoring time the logits are restricted to the subset, which is what both
official codebases do, so their text embeddings are shared with every other ImageNet variant.

A missing or malformed annotation file raises :class:`LayoutError` naming the file and the
layout expected; an annotated image that is missing on disk is recorded as a bad image at ingest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from glocal.data.images import IMAGE_SUFFIXES, ImageRecord
from glocal.paths import read_json, text_data

WNID = re.compile(r"^n\d{8}$")


class LayoutError(ValueError):
    """A dataset folder that does not have the expected files."""


@dataclass
class Benchmark:
    dataset: str
    records: list[ImageRecord]
    classnames: list[str]  # label index -> name
    class_subset: list[int] | None = None  # labels that are scored (ImageNet-R/-A); None = all
    text_dataset: str = ""  # whose templates / CuPL / CLIP-D files describe these classes


@dataclass(frozen=True)
class LayoutSpec:
    dataset: str
    folders: tuple[str, ...]  # candidate sub-folders of a data root, first existing wins
    layout: str  # the expected layout, quoted in errors
    reader: Callable[[Path, "LayoutSpec"], Benchmark] = field(compare=False)


LAYOUTS: dict[str, LayoutSpec] = {}


def register_layout(dataset: str, folders: tuple[str, ...], layout: str):
    def wrap(fn):
        LAYOUTS[dataset] = LayoutSpec(dataset, folders, layout, fn)
        return fn

    return wrap


def read_benchmark(dataset: str, root: str | Path) -> Benchmark:
    """Records of ``dataset`` (a layout name, see :data:`LAYOUTS`) from its folder ``root``."""
    try:
        spec = LAYOUTS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset layout {dataset!r}; choose from {', '.join(LAYOUTS)}") from None
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: {dataset} folder not found; expected {spec.layout}")
    return spec.reader(root, spec)


def find_dataset_folder(data_root: str | Path, dataset: str) -> Path | None:
    """The folder of ``dataset`` under a data root (its first candidate name that exists)."""
    for name in LAYOUTS[dataset].folders:
        path = Path(data_root) / name
        if path.is_dir():
            return path
    return None


# ----------------------------------------------------------------------------- helpers
def load_class_list(name: str) -> list:
    path = text_data(f"classnames/{name}.json")
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: class list not found; set GLOCAL_TEXT_DATA to a folder laid out like glocal/text/data "
            "(classnames/, templates/, descriptions/; plain JSON)"
        )
    return read_json(path)


def _lines(path: Path, spec: LayoutSpec, fields: int) -> list[tuple[int, list[str]]]:
    """Non-empty lines of an annotation file split on whitespace, each with at least ``fields``."""
    if not path.is_file():
        raise LayoutError(f"{path}: missing; {spec.dataset} expects {spec.layout}")
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < fields:
            raise LayoutError(f"{path}:{number}: expected {fields} field(s), got {line!r}; {spec.dataset} expects {spec.layout}")
        out.append((number, parts))
    if not out:
        raise LayoutError(f"{path}: empty; {spec.dataset} expects {spec.layout}")
    return out


def _int(path: Path, number: int, text: str, spec: LayoutSpec) -> int:
    try:
        return int(text)
    except ValueError:
        raise LayoutError(f"{path}:{number}: {text!r} is not an integer; {spec.dataset} expects {spec.layout}") from None


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _record(root: Path, path: Path, label: int) -> ImageRecord:
    return ImageRecord(path.relative_to(root).as_posix(), path, label)


def _label_in_range(path: Path, number: int, label: int, classes: int, spec: LayoutSpec) -> int:
    if not 0 <= label < classes:
        raise LayoutError(f"{path}:{number}: label {label} outside 0..{classes - 1}; {spec.dataset} expects {spec.layout}")
    return label


def _class_folder_listing(root: Path, listing: Path, spec: LayoutSpec, index: dict[str, int], suffix: str) -> list[ImageRecord]:
    """A split file of ``<class folder>/<image>`` lines (DTD, Food101): images under ``root/images``."""
    records = []
    for number, parts in _lines(listing, spec, 1):
        folder = parts[0].split("/")[0]
        if folder not in index:
            raise LayoutError(f"{listing}:{number}: class {folder!r} is not one of the {len(index)} {spec.dataset} classes")
        records.append(ImageRecord(f"images/{parts[0]}{suffix}", root / "images" / f"{parts[0]}{suffix}", index[folder]))
    return records


def _wnid_folders(root: Path, spec: LayoutSpec, allowed: list[int] | None) -> list[ImageRecord]:
    """Records from ``root/<wnid>/<image>``; labels are ImageNet indices (sorted wnids)."""
    wnids = load_class_list("imagenet_wnids")
    index = {w: i for i, w in enumerate(wnids)}
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise LayoutError(f"{root}: no class folders; {spec.dataset} expects {spec.layout}")
    unknown = [p.name for p in folders if p.name not in index]
    if unknown:
        raise LayoutError(f"{root}: folder(s) {unknown[:5]} are not ImageNet wnids; {spec.dataset} expects {spec.layout}")
    scored = set(allowed) if allowed is not None else None
    outside = [p.name for p in folders if scored is not None and index[p.name] not in scored]
    if outside:
        raise LayoutError(f"{root}: wnid folder(s) {outside[:5]} are not among the {len(allowed)} classes of {spec.dataset} "
                          "(imagenet_subsets.json)")
    return [_record(root, path, index[folder.name]) for folder in folders for path in _images_in(folder)]


def _imagenet_family(dataset: str, records: list[ImageRecord], subset: list[int] | None = None) -> Benchmark:
    return Benchmark(dataset, records, load_class_list("imagenet"), subset, text_dataset="imagenet")


# ----------------------------------------------------------------------------- readers
IMAGENET_VAL = ("the ImageNet val folder: wnid sub-folders (val/n01440764/*.JPEG), or the flat folder of "
                "ILSVRC2012_val_*.JPEG with LOC_val_solution.csv (ImageId,PredictionString) or val.txt "
                "(<file> <label 0-999 in sorted-wnid order | wnid>) beside or inside it")


@register_layout("imagenet", ("imagenet/val", "imagenet", "ILSVRC2012_img_val", "val"), IMAGENET_VAL)
def read_imagenet_val(root: Path, spec: LayoutSpec) -> Benchmark:
    if any(WNID.match(p.name) for p in root.iterdir() if p.is_dir()):
        return _imagenet_family("imagenet", _wnid_folders(root, spec, None))
    wnids = load_class_list("imagenet_wnids")
    index = {w: i for i, w in enumerate(wnids)}
    labels: dict[str, int] = {}
    for folder in (root, root.parent):
        solution, listing = folder / "LOC_val_solution.csv", folder / "val.txt"
        if solution.is_file():
            rows = solution.read_text(encoding="utf-8").splitlines()
            for number, row in enumerate(rows[1:], start=2):
                if not row.strip():
                    continue
                image, _, prediction = row.partition(",")
                wnid = prediction.split()[0] if prediction.split() else ""
                if wnid not in index:
                    raise LayoutError(f"{solution}:{number}: {wnid!r} is not an ImageNet wnid; expected ImageId,PredictionString")
                labels[image] = index[wnid]
            break
        if listing.is_file():
            for number, (name, value) in ((n, p[:2]) for n, p in _lines(listing, spec, 2)):
                label = index[value] if value in index else _int(listing, number, value, spec)
                labels[Path(name).stem] = _label_in_range(listing, number, label, 1000, spec)
            break
    else:
        devkit = next((f for f in (root, root.parent) if (f / "ILSVRC2012_validation_ground_truth.txt").is_file()), None)
        hint = (" (the devkit's ILSVRC2012_validation_ground_truth.txt numbers classes by ILSVRC2012_ID, which needs "
                "meta.mat to map to wnids: convert it to val.txt or sort the images into wnid folders)") if devkit else ""
        raise LayoutError(f"{root}: no labels for the flat val folder{hint}; imagenet expects {spec.layout}")
    records = []
    for path in _images_in(root):
        if path.stem in labels:
            records.append(_record(root, path, labels[path.stem]))
    if not records:
        raise LayoutError(f"{root}: no image matches a labelled ImageId; imagenet expects {spec.layout}")
    return _imagenet_family("imagenet", records)


@register_layout("imagenet_v2", ("imagenetv2-matched-frequency-format-val", "imagenet_v2", "imagenetv2", "imagenet-v2"),
                 "ImageNet-V2 matched-frequency: folders named by class index 0..999, each holding its images")
def read_imagenet_v2(root: Path, spec: LayoutSpec) -> Benchmark:
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
    bad = [p.name for p in folders if not p.name.isdigit() or not 0 <= int(p.name) < 1000]
    if not folders or bad:
        raise LayoutError(f"{root}: {'folder(s) ' + str(bad[:5]) + ' are not class indices' if bad else 'no class folders'}; "
                          f"imagenet_v2 expects {spec.layout}")
    records = [_record(root, path, int(folder.name)) for folder in sorted(folders, key=lambda p: int(p.name))
               for path in _images_in(folder)]
    return _imagenet_family("imagenet_v2", records)


@register_layout("imagenet_sketch", ("imagenet-sketch/sketch", "imagenet-sketch", "imagenet_sketch", "sketch"),
                 "ImageNet-Sketch: wnid sub-folders (sketch/n01440764/*.JPEG)")
def read_imagenet_sketch(root: Path, spec: LayoutSpec) -> Benchmark:
    return _imagenet_family("imagenet_sketch", _wnid_folders(root, spec, None))


def _imagenet_subset(dataset: str, root: Path, spec: LayoutSpec) -> Benchmark:
    subset = load_class_list("imagenet_subsets")[dataset]
    return _imagenet_family(dataset, _wnid_folders(root, spec, subset), subset)


@register_layout("imagenet_r", ("imagenet-r", "imagenet_r"), "ImageNet-R: 200 wnid sub-folders (imagenet-r/n01443537/*.jpg)")
def read_imagenet_r(root: Path, spec: LayoutSpec) -> Benchmark:
    return _imagenet_subset("imagenet_r", root, spec)


@register_layout("imagenet_a", ("imagenet-a", "imagenet_a"), "ImageNet-A: 200 wnid sub-folders (imagenet-a/n01498041/*.jpg)")
def read_imagenet_a(root: Path, spec: LayoutSpec) -> Benchmark:
    return _imagenet_subset("imagenet_a", root, spec)


@register_layout("cub", ("CUB_200_2011", "cub", "CUB"),
                 "CUB_200_2011/: images.txt (<id> <path>), image_class_labels.txt (<id> <class 1-200>), "
                 "train_test_split.txt (<id> <is_train>), images/<path>; the test split (is_train 0) is read")
def read_cub(root: Path, spec: LayoutSpec) -> Benchmark:
    classnames = load_class_list("cub")
    paths = {parts[0]: parts[1] for _, parts in _lines(root / "images.txt", spec, 2)}
    labels_file = root / "image_class_labels.txt"
    labels = {parts[0]: _label_in_range(labels_file, n, _int(labels_file, n, parts[1], spec) - 1, len(classnames), spec)
              for n, parts in _lines(labels_file, spec, 2)}
    split_file = root / "train_test_split.txt"
    test_ids = [parts[0] for n, parts in _lines(split_file, spec, 2) if _int(split_file, n, parts[1], spec) == 0]
    missing = [i for i in test_ids if i not in paths or i not in labels]
    if missing:
        raise LayoutError(f"{root}: test image id(s) {missing[:5]} missing from images.txt or image_class_labels.txt")
    records = [ImageRecord(f"images/{paths[i]}", root / "images" / paths[i], labels[i]) for i in sorted(test_ids, key=int)]
    return Benchmark("cub", records, classnames, text_dataset="cub")


@register_layout("pets", ("oxford-iiit-pet", "pets", "oxford_pets"),
                 "oxford-iiit-pet/: annotations/test.txt (<image> <class 1-37> <species> <breed>), images/<image>.jpg")
def read_pets(root: Path, spec: LayoutSpec) -> Benchmark:
    classnames = load_class_list("pets")
    listing = root / "annotations" / "test.txt"
    records = []
    for number, parts in _lines(listing, spec, 2):
        label = _label_in_range(listing, number, _int(listing, number, parts[1], spec) - 1, len(classnames), spec)
        records.append(ImageRecord(f"images/{parts[0]}.jpg", root / "images" / f"{parts[0]}.jpg", label))
    return Benchmark("pets", records, classnames, text_dataset="pets")


@register_layout("dtd", ("dtd", "DTD"), "dtd/: labels/test1.txt (<category>/<image>.jpg per line), images/<category>/<image>.jpg")
def read_dtd(root: Path, spec: LayoutSpec) -> Benchmark:
    classnames = load_class_list("dtd")
    index = {name.replace(" ", "_"): i for i, name in enumerate(classnames)}
    records = _class_folder_listing(root, root / "labels" / "test1.txt", spec, index, "")
    return Benchmark("dtd", records, classnames, text_dataset="dtd")


@register_layout("food101", ("food-101", "food101", "Food101"),
                 "food-101/: meta/classes.txt (one class folder per line, label order), meta/test.txt "
                 "(<class>/<image id> per line), images/<class>/<image id>.jpg")
def read_food101(root: Path, spec: LayoutSpec) -> Benchmark:
    classnames = load_class_list("food101")
    classes_file = root / "meta" / "classes.txt"
    folders = [parts[0] for _, parts in _lines(classes_file, spec, 1)]
    if len(folders) != len(classnames):
        raise LayoutError(f"{classes_file}: {len(folders)} classes, expected {len(classnames)}")
    index = {name: i for i, name in enumerate(folders)}
    records = _class_folder_listing(root, root / "meta" / "test.txt", spec, index, ".jpg")
    return Benchmark("food101", records, classnames, text_dataset="food101")


@register_layout("places365", ("places365", "Places365"),
                 "places365/: places365_val.txt (<image> <label 0-364> per line) and the images in val_256/ or val_large/")
def read_places365(root: Path, spec: LayoutSpec) -> Benchmark:
    classnames = load_class_list("places365")
    listing = next((p for p in (root / "places365_val.txt", root / "filelist" / "places365_val.txt") if p.is_file()),
                   root / "places365_val.txt")
    folder = next((root / name for name in ("val_256", "val_large") if (root / name).is_dir()), None)
    if folder is None:
        raise LayoutError(f"{root}: no val_256/ or val_large/ image folder; places365 expects {spec.layout}")
    records = []
    for number, parts in _lines(listing, spec, 2):
        label = _label_in_range(listing, number, _int(listing, number, parts[1], spec), len(classnames), spec)
        name = parts[0].lstrip("/")
        records.append(_record(root, folder / name, label))
    return Benchmark("places365", records, classnames, text_dataset="places365")
