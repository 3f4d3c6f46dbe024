"""Stage 4: per shard, the full-image feature and every crop feature the methods need, as float16
fixed-size lists in Parquet, with the boxes used."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch
from prefect import task
from prefect.cache_policies import NONE

from glocal import cache
from glocal.config import ABSConfig, LGCAConfig, WCAConfig
from glocal.engine import EngineConfig, encode_features
from glocal.features import ImageFeatures
from glocal.shards import iter_shard, shard_ids
from storage import Catalog, read_artifact, write_parquet_atomic
from tasks.embed_text import load_text_bank
from tasks.ingest import shard_path

PREFETCH_IMAGES = 16  # decoded ahead in a thread, overlapping the encoder
CONFIG_TYPES = {"abs_config": ABSConfig, "wca_config": WCAConfig, "lgca_config": LGCAConfig}


def _fixed(values: np.ndarray, dtype) -> pa.Array:
    """(B, K) array -> fixed-size-list column of K values."""
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1).astype(dtype)), values.shape[1])


def _unfixed(column: pa.ChunkedArray, width: int) -> np.ndarray:
    return column.combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(column), -1, width)


def encode_images(backbone, images, ids, needs, configs, maps, frame, class_embeddings, batch_size):
    """The compute of this stage (a seam for tests that interrupt a run): the batched engine;
    ``images`` is consumed once, in order."""
    return encode_features(backbone, images, ids, needs, attention_maps=maps, attention_frame=frame,
                           class_embeddings=class_embeddings, engine=EngineConfig(batch_size=batch_size), **configs)


def encode_shard(db: str, dataset: str, shard: int, key: str, backbone_model: str, needs: list[str], configs: dict,
                 attention_key: str | None = None, text_key: str | None = None, batch_size: int = 64,
                 feature_parts: dict[str, str] | None = None) -> int:
    """Encode one shard and register it. ``feature_parts`` (kind -> content key, stored in the
    artifact's meta) lets later runs find and reuse these features."""
    catalog = Catalog(db)
    info = catalog.dataset(dataset)
    path = shard_path(info["shard_dir"], shard)
    ids = [image_id for image_id, _ in shard_ids(path)]
    images = (image for _, _, image in iter_shard(path, prefetch=PREFETCH_IMAGES))
    configs = {name: CONFIG_TYPES[name](**value) for name, value in configs.items()}
    maps, frame = None, "stretch"
    if attention_key:
        table = read_artifact(catalog.artifact_paths("attention", attention_key)[shard]).to_pydict()
        order = {image_id: i for i, image_id in enumerate(table["image_id"])}
        grid = table["grid"][0]
        maps = torch.tensor([table["attention"][order[i]] for i in ids]).reshape(-1, grid, grid)
        frame = table["frame"][0]
    class_embeddings = None
    if "lgca" in needs:
        bank = load_text_bank(db, text_key, info["classnames"])
        class_embeddings = bank.descriptions.class_means()
    backbone = cache.backbone(backbone_model)
    features, record = encode_images(backbone, images, ids, set(needs), configs, maps, frame, class_embeddings, batch_size)
    columns = {"image_id": pa.array(ids), "full": _fixed(features.full.numpy(), np.float16)}
    for name in ("raw", "feat", "wca"):
        value = getattr(features, name)
        if value is not None:
            columns[name] = _fixed(value.reshape(len(ids), -1).numpy(), np.float16)
    for t, step in enumerate(features.lgca or []):
        columns[f"lgca_{t}"] = _fixed(step.reshape(len(ids), -1).numpy(), np.float16)
    for name, boxes in (("raw_boxes", record.raw_boxes), ("windows", record.windows), ("wca_boxes", record.wca_boxes)):
        if boxes:
            columns[name] = _fixed(torch.stack(boxes).reshape(len(ids), -1).numpy(), np.int32)
    path = write_parquet_atomic(pa.table(columns), catalog.artifact_path("encode", key, shard))
    catalog.register_artifact("encode", key, shard, path, len(ids), {"dataset": dataset, "backbone": backbone_model,
                                                                        "attention_key": attention_key, "grid": backbone.grid,
                                                                        "needs": sorted(needs), "parts": feature_parts or {}})
    return len(ids)


def load_features(db: str, key: str, embed_dim: int) -> tuple[list[str], ImageFeatures]:
    """All shards of an encode artifact, in shard order."""
    catalog = Catalog(db)
    tables = [read_artifact(p) for _, p in sorted(catalog.artifact_paths("encode", key).items())]
    table = pa.concat_tables(tables)
    get = lambda name: torch.from_numpy(_unfixed(table[name], embed_dim)) if name in table.column_names else None
    lgca_cols = sorted((c for c in table.column_names if c.startswith("lgca_")), key=lambda c: int(c.split("_")[1]))
    features = ImageFeatures(full=get("full")[:, 0], raw=get("raw"), feat=get("feat"), wca=get("wca"),
                             lgca=[get(c) for c in lgca_cols] or None)
    return table["image_id"].to_pylist(), features


encode_task = task(encode_shard, name="encode-shard", cache_policy=NONE)
