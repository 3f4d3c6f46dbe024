"""Stage 3: attention maps per image, one Parquet file per shard.

``compute_attention`` is the worker side (no database: it reads a shard file and writes a Parquet
file, on a Dask worker when the flow runs on a cluster); ``attention_inputs`` and
``register_attention`` are the flow side: catalog lookups and the registration, which only the
flow process does."""

from __future__ import annotations

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NONE

from glocal.encode import cache
from glocal.data.shards import stream_images
from storage import Catalog, write_parquet_atomic
from tasks.artifact_formats import shard_path


def compute_attention(shard_file: str, out_path: str, kind: str, model: str | None, backbone_model: str,
                      crop_rounding: str = "floor") -> dict:
    """Attention maps of one shard written to ``out_path`` (atomically). -> {path, rows, worker}."""
    ids, images = stream_images(shard_file)
    source = cache.attention_source(kind, model, backbone_model, crop_rounding)
    maps = source.maps(images)
    if len(maps) != len(ids):
        raise RuntimeError(f"{shard_file}: {len(maps)} attention maps for {len(ids)} images; the shard is damaged, re-run ingest")
    table = pa.table({
        "image_id": ids,
        "grid": [source.grid] * len(ids),
        "frame": [source.frame] * len(ids),
        "attention": [m.reshape(-1).tolist() for m in maps],
    })
    path = write_parquet_atomic(table, out_path)
    return {"path": str(path), "rows": len(ids), "worker": cache.worker_tag()}


def attention_inputs(catalog: Catalog, info: dict, shard: int, key: str) -> dict:
    """``info``: the dataset's catalog entry (read once by the flow, not per shard)."""
    return {"shard_file": str(shard_path(info["shard_dir"], shard)), "out_path": str(catalog.artifact_path("attention", key, shard))}


def register_attention(catalog: Catalog, dataset: str, shard: int, key: str, kind: str, model: str | None, result: dict) -> None:
    catalog.register_artifact("attention", key, shard, result["path"], result["rows"], {"dataset": dataset, "source": kind, "model": model,
                                                                                       "worker": result.get("worker")})


attention_compute_task = task(compute_attention, name="attention-shard", cache_policy=NONE)
