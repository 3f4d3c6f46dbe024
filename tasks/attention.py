"""Stage 3: attention maps per image, one Parquet file per shard."""

from __future__ import annotations

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NONE

from glocal import cache
from glocal.shards import read_shard
from storage import Catalog, write_parquet_atomic
from tasks.ingest import shard_path


def attention_shard(db: str, dataset: str, shard: int, key: str, kind: str, model: str | None, backbone_model: str) -> int:
    catalog = Catalog(db)
    info = catalog.dataset(dataset)
    samples = read_shard(shard_path(info["shard_dir"], shard))
    source = cache.attention_source(kind, model, backbone_model)
    maps = source.maps([im for _, _, im in samples])
    table = pa.table({
        "image_id": [s[0] for s in samples],
        "grid": [source.grid] * len(samples),
        "frame": [source.frame] * len(samples),
        "attention": [m.reshape(-1).tolist() for m in maps],
    })
    path = write_parquet_atomic(table, catalog.artifact_path("attention", key, shard))
    catalog.register_artifact("attention", key, shard, path, len(samples), {"dataset": dataset, "source": kind, "model": model})
    return len(samples)


attention_task = task(attention_shard, name="attention-shard", cache_policy=NONE)
