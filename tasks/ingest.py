"""Stage 0: an image folder -> webdataset shards + a manifest in DuckDB. Bad images are recorded
with their reason and left out; the rest go on."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from glocal.data import BadImage, open_image, read_dataset
from glocal.shards import write_shard
from storage import Catalog


def ingest_folder(db: str, dataset: str, root: str, shard_size: int = 64, classnames: list[str] | None = None, limit: int | None = None) -> dict:
    catalog = Catalog(db)
    records, folder_classes = read_dataset(root)
    records = records[:limit] if limit else records
    classnames = classnames or folder_classes
    if classnames is None:
        raise ValueError(f"{root}: no class names (use class sub-folders, a classname column, or --classnames)")
    good, bad = [], []
    for rec in records:
        try:
            image = open_image(rec.path)
        except BadImage as exc:
            bad.append((rec.image_id, str(exc)))
            continue
        if not 0 <= rec.label < len(classnames):
            bad.append((rec.image_id, f"label {rec.label} outside 0..{len(classnames) - 1}"))
            continue
        good.append((rec, image.size))
    shard_dir = catalog.artifact_root / "shards" / dataset
    manifest = []
    n_shards = (len(good) + shard_size - 1) // shard_size
    for shard in range(n_shards):
        chunk = good[shard * shard_size : (shard + 1) * shard_size]
        samples = [(rec.image_id, rec.label, rec.path.read_bytes(), rec.path.suffix.lstrip(".").lower()) for rec, _ in chunk]
        write_shard(shard_dir / f"shard-{shard:05d}.tar", samples)
        manifest += [(rec.image_id, shard, rec.label, size[0], size[1]) for rec, size in chunk]
    catalog.register_dataset(dataset, str(root), classnames, n_shards, str(shard_dir), manifest, bad)
    return {"dataset": dataset, "images": len(good), "shards": n_shards, "bad": bad}


def shard_path(shard_dir: str, shard: int) -> Path:
    return Path(shard_dir) / f"shard-{shard:05d}.tar"


ingest_task = task(ingest_folder, name="ingest", cache_policy=NONE)
