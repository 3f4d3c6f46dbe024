"""Stage 0: an image folder, or existing webdataset tar shards, -> our webdataset shards + a
manifest in DuckDB. Bad images are recorded with their reason and left out; the rest go on.
Images stream through: at most one shard's bytes are held at a time."""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import io
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterable, Iterator

from prefect import task
from prefect.cache_policies import NONE

from glocal.data.images import BadImage, folder_labels, open_image, read_dataset
from glocal.data.clip_benchmark import is_clip_benchmark_folder, read_clip_benchmark_folder
from glocal.data.datasets import Benchmark, load_class_list, read_benchmark
from glocal.data.names import check_name
from glocal.progress import progress
from glocal.data.shards import write_shard
from storage import Catalog

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "bmp", "img", "image")


def is_webdataset(source: str) -> bool:
    """A .tar path, a glob or brace pattern of them, or a folder holding only .tar files."""
    path = Path(source)
    if path.is_dir():
        entries = [p for p in path.iterdir() if not p.name.startswith(".")]
        return bool(entries) and all(p.suffix == ".tar" for p in entries)
    return source.endswith(".tar") or "{" in source or "*" in source


def ingest_folder(db: str, dataset: str, root: str, shard_size: int = 64, classnames: list[str] | None = None, limit: int | None = None,
                  layout: str | None = None, class_ids: list[str] | None = None, templates: list[str] | None = None) -> dict:
    """``layout``: a benchmark dataset's own layout (see ``glocal.data.datasets``: imagenet, cub, ...);
    then ``limit`` takes an evenly spaced sample, so a small run still spans the classes.
    ``class_ids``: the folder name of each class (class sub-folders named by id, not by name);
    ImageNet's wnid folders are recognised without it. A CLIP_benchmark folder (``test/*.tar`` with
    ``classnames.txt`` and ``zeroshot_classification_templates.txt`` beside it) brings its own class
    names and templates; ``classnames`` / ``templates`` given here take precedence."""
    check_name(dataset)  # it names a folder of the workspace: never a path
    if not layout and is_clip_benchmark_folder(root):
        folder = read_clip_benchmark_folder(root)
        names = classnames or folder.classnames
        if not names:
            raise ValueError(f"{root}: a CLIP_benchmark folder without classnames.txt; add it (one class per line) or pass --classnames FILE")
        return _ingest(db, dataset, str(root), names, _webdataset_items(folder.shards, limit), None, shard_size,
                       templates=templates or folder.templates)
    if layout:
        return ingest_benchmark(db, dataset, str(root), read_benchmark(layout, root), shard_size, classnames, limit)
    if is_webdataset(str(root)):
        return ingest_webdataset(db, dataset, str(root), shard_size, classnames, limit, templates)
    records, folder_classes = read_dataset(root)
    records = records[:limit] if limit else records
    if classnames is not None and folder_classes is not None and not (Path(root) / "labels.csv").exists():
        # class sub-folders with a given class list: each folder's label found by id or name
        labels = folder_labels(folder_classes, classnames, class_ids if class_ids is not None else imagenet_ids(folder_classes, classnames))
        records = [dataclasses.replace(rec, label=labels[folder_classes[rec.label]]) for rec in records]
    classnames = classnames or folder_classes
    if classnames is None:
        raise ValueError(f"{root}: no class names (use class sub-folders, a classname column, or --classnames)")
    items = ((rec.image_id, rec.label, rec.path) for rec in records)
    return _ingest(db, dataset, str(root), classnames, items, len(records), shard_size, templates=templates)


def imagenet_ids(folders: list[str], classnames: list[str]) -> list[str] | None:
    """ImageNet's wnids when the folders are wnids and the classes are ImageNet's 1000."""
    if len(classnames) != 1000 or not folders or not all(re.fullmatch(r"n\d{8}", f) for f in folders):
        return None
    try:
        return load_class_list("imagenet_wnids")
    except FileNotFoundError:
        return None


def ingest_webdataset(db: str, dataset: str, source: str, shard_size: int = 64, classnames: list[str] | None = None,
                      limit: int | None = None, templates: list[str] | None = None) -> dict:
    """Existing shards as written by webdataset tools: per sample an image (jpg/png/webp/...) and a
    label in ``cls`` (an integer) or ``json`` (``{"label": int}``). Image ids are
    ``<shard file name>/<sample key>``: stable across reruns."""
    if not classnames:
        raise ValueError(f"{source}: webdataset shards carry no class names; pass --classnames FILE.json")
    urls = _shard_urls(source)
    items = _webdataset_items(urls, limit)
    return _ingest(db, dataset, source, classnames, items, None, shard_size, templates=templates)


def _shard_urls(source: str) -> list[str] | str:
    path = Path(source)
    if path.is_dir():
        return sorted(str(p) for p in path.glob("*.tar"))
    if "*" in source:
        urls = sorted(glob.glob(source))
        if not urls:
            raise FileNotFoundError(f"{source}: no tar shards match")
        return urls
    if "{" not in source and not path.exists():
        raise FileNotFoundError(f"{source}: shard not found")
    return source  # a single file or a brace pattern: webdataset expands it


def _webdataset_items(urls, limit: int | None) -> Iterator[tuple]:
    import webdataset as wds

    count = 0
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        if limit and count >= limit:
            return
        count += 1
        image_id = f"{Path(sample.get('__url__', 'shard')).name}/{sample['__key__']}"
        key = next((k for k in IMAGE_KEYS if k in sample), None)
        label = None
        if "cls" in sample:
            label = sample["cls"]
        elif "json" in sample:
            try:
                label = json.loads(sample["json"]).get("label")
            except (ValueError, AttributeError):
                label = None
        try:
            label = int(label.decode() if isinstance(label, bytes) else label)
        except (TypeError, ValueError):
            yield image_id, None, BadImage("no integer label in 'cls' or json 'label'")
            continue
        if key is None:
            yield image_id, label, BadImage(f"no image entry (looked for {', '.join(IMAGE_KEYS)}; found {sorted(k for k in sample if not k.startswith('__'))})")
            continue
        yield image_id, label, (sample[key], "jpg" if key in ("img", "image") else key)


def ingest_benchmark(db: str, dataset: str, root: str, bench: Benchmark, shard_size: int = 64, classnames: list[str] | None = None,
                     limit: int | None = None) -> dict:
    """An already-read benchmark dataset (``glocal.data.datasets``); ``limit``: an evenly spaced sample."""
    records = even_sample(bench.records, limit)
    items = ((rec.image_id, rec.label, rec.path) for rec in records)
    return _ingest(db, dataset, root, classnames or bench.classnames, items, len(records), shard_size, bench.class_subset)


def even_sample(records: list, limit: int | None) -> list:
    """``limit`` records evenly spaced through the list (all of them when ``limit`` is None)."""
    if not limit or limit >= len(records):
        return records
    return [records[i * len(records) // limit] for i in range(limit)]


def _ingest(db: str, dataset: str, root: str, classnames: list[str], items: Iterable[tuple], total: int | None, shard_size: int,
            class_subset: list[int] | None = None, templates: list[str] | None = None) -> dict:
    """items: (image_id, label, path | (bytes, ext) | BadImage). Validates each image by decoding
    it, writes full shards as they fill, registers the manifest (with each image's sha256) at the
    end (one transaction)."""
    check_name(dataset)
    catalog = Catalog(db)
    # a fresh folder per ingest: the live shards are never touched until the new manifest has
    # committed, so a killed re-ingest leaves the old dataset whole (and this folder unused)
    dataset_dir = catalog.contained(catalog.artifact_root / "shards" / dataset)
    shard_dir = catalog.contained(dataset_dir / f"ingest-{uuid.uuid4().hex[:12]}")
    manifest, bad, buffer = [], [], []
    scored = set(class_subset) if class_subset is not None else None
    shards = 0

    def flush():
        nonlocal shards
        write_shard(shard_dir / f"shard-{shards:05d}.tar", [(i, label, data, ext) for i, label, data, ext, _ in buffer])
        # the image bytes' hash is part of the dataset's fingerprint: other pixels under the same
        # names never reuse features computed from the old ones
        manifest.extend((i, shards, label, size[0], size[1], hashlib.sha256(data).hexdigest()) for i, label, data, _, size in buffer)
        buffer.clear()
        shards += 1

    with progress(total=total or 0, desc=f"ingest {dataset}", unit="img") as bar:
        for image_id, label, source in items:
            bar.update(1)
            if isinstance(source, BadImage):
                bad.append((image_id, str(source)))
                continue
            if isinstance(source, (str, os.PathLike)):
                data, ext = None, Path(source).suffix.lstrip(".").lower()
            else:
                data, ext = source
            try:
                image = open_image(source if data is None else io.BytesIO(data))
            except BadImage as exc:
                bad.append((image_id, str(exc)))
                continue
            if not 0 <= label < len(classnames) or scored is not None and label not in scored:
                bad.append((image_id, f"label {label} outside 0..{len(classnames) - 1}" if class_subset is None else f"label {label} outside the scored classes"))
                continue
            buffer.append((image_id, label, data if data is not None else Path(source).read_bytes(), ext, image.size))
            if len(buffer) == shard_size:
                flush()
    if buffer:
        flush()
    if not manifest:  # nothing to register: the workspace keeps what it had under this name
        example = f"; e.g. {bad[0][0]}: {bad[0][1]}" if bad else ""
        raise ValueError(f"{root}: no readable image to ingest ({len(bad)} unreadable{example}); check the folder, --layout or --limit")
    catalog.register_dataset(dataset, str(root), classnames, shards, str(shard_dir), manifest, bad, class_subset, templates)
    remove_unused_shards(catalog, dataset_dir, shard_dir)
    return {"dataset": dataset, "images": len(manifest), "shards": shards, "bad": bad}


def remove_unused_shards(catalog: Catalog, dataset_dir: Path, live: Path) -> None:
    """After the switch: earlier ingests' shard folders (and a killed one's), and shards of the
    layout before per-ingest folders, all under glocal's own artifact folder: each entry is
    checked to lie there before it is removed, and links are never followed."""
    catalog.contained(dataset_dir)
    for entry in dataset_dir.iterdir():
        if entry == live or entry.is_symlink() or entry.resolve().parent != dataset_dir.resolve():
            continue
        catalog.contained(entry)
        if entry.is_dir() and entry.name.startswith("ingest-"):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.is_file() and entry.suffix == ".tar":
            entry.unlink(missing_ok=True)


ingest_task = task(ingest_folder, name="ingest", cache_policy=NONE)
