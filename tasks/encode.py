"""Stage 4: per shard, the full-image feature and every crop feature the methods need, as float16
fixed-size lists in Parquet, with the boxes used."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa
import torch
from prefect import task
from prefect.cache_policies import NONE

from glocal import cache
from glocal.config import ABSConfig, LGCAConfig, WCAConfig
from glocal.crop_kinds import CROP_KINDS, image_kinds
from glocal.engine import EngineConfig, encode_features
from glocal.features import ImageFeatures
from glocal.shards import stream_images
from storage import Catalog, fixed_lists, read_artifact, unfixed, write_parquet_atomic
from tasks.embed_text import text_bank_from_file
from tasks.ingest import shard_path

CONFIG_TYPES = {"abs_config": ABSConfig, "wca_config": WCAConfig, "lgca_config": LGCAConfig}


def config_type(key: str) -> type:
    """The class of an extractor config travelling under ``key`` (a built-in's, or a registered
    crop kind's ``kind:<name>``)."""
    if key in CONFIG_TYPES:
        return CONFIG_TYPES[key]
    return CROP_KINDS[key.split(":", 1)[1]].config


def encode_images(backbone, images, ids, needs, configs, maps, frame, class_embeddings, engine: EngineConfig):
    """The compute of this stage (a seam for tests that interrupt a run): the batched engine;
    ``images`` is consumed once, in order."""
    return encode_features(backbone, images, ids, needs, attention_maps=maps, attention_frame=frame,
                           class_embeddings=class_embeddings, engine=engine, **configs)


def compute_encode(shard_file: str, out_path: str, backbone_model: str, needs: list[str], configs: dict,
                   attention_file: str | None = None, text_file: str | None = None, classnames: list[str] | None = None,
                   batch_size: int = 64, compile: bool = False) -> dict:
    """The worker side of one shard: no database. Reads the shard (and its attention maps and the
    text embeddings LGCA needs), encodes, writes ``out_path`` atomically. -> {path, rows, grid, worker}."""
    ids, images = stream_images(shard_file)
    configs = {name: config_type(name)(**value) for name, value in configs.items()}
    maps, frame = None, "stretch"
    if attention_file:
        table = read_artifact(attention_file).to_pydict()
        order = {image_id: i for i, image_id in enumerate(table["image_id"])}
        grid = table["grid"][0]
        maps = torch.tensor([table["attention"][order[i]] for i in ids]).reshape(-1, grid, grid)
        frame = table["frame"][0]
    class_embeddings = None
    if "lgca" in needs:
        class_embeddings = text_bank_from_file(text_file, classnames).descriptions.class_means()
    backbone = cache.backbone(backbone_model)
    engine = EngineConfig(batch_size=batch_size, compile=compile)
    features, record = encode_images(backbone, images, ids, set(needs), configs, maps, frame, class_embeddings, engine)
    columns = {"image_id": pa.array(ids), "full": fixed_lists(features.full.numpy(), np.float16)}
    for name in ("raw", "feat", "wca"):
        value = getattr(features, name)
        if value is not None:
            columns[name] = fixed_lists(value.reshape(len(ids), -1).numpy(), np.float16)
    for name, value in features.extra.items():  # registered crop kinds: features and boxes, one column each
        columns[name] = fixed_lists(value.reshape(len(ids), -1).numpy(), np.float16)
        columns[f"{name}_boxes"] = fixed_lists(torch.stack(record.kind_boxes[name]).reshape(len(ids), -1).numpy(), np.int32)
    for t, step in enumerate(features.lgca or []):
        columns[f"lgca_{t}"] = fixed_lists(step.reshape(len(ids), -1).numpy(), np.float16)
    for name, boxes in (("raw_boxes", record.raw_boxes), ("windows", record.windows), ("wca_boxes", record.wca_boxes)):
        if boxes:
            columns[name] = fixed_lists(torch.stack(boxes).reshape(len(ids), -1).numpy(), np.int32)
    path = write_parquet_atomic(pa.table(columns), out_path)
    return {"path": str(path), "rows": len(ids), "grid": backbone.grid, "worker": cache.worker_tag()}


def encode_inputs(catalog: Catalog, info: dict, key: str, attention_key: str | None, text_key: str | None,
                  needs: list[str]) -> Callable[[int], dict]:
    """shard -> the file paths a worker needs for it; the catalog is read once, here in the flow
    process, not once per shard. ``info``: the dataset's catalog entry."""
    attention = catalog.artifact_paths("attention", attention_key) if attention_key else {}
    lgca = {"text_file": str(catalog.artifact_paths("text", text_key)[0]), "classnames": info["classnames"]} if "lgca" in needs else {}

    def for_shard(shard: int) -> dict:
        inputs = {"shard_file": str(shard_path(info["shard_dir"], shard)), "out_path": str(catalog.artifact_path("encode", key, shard)), **lgca}
        if attention_key:
            inputs["attention_file"] = str(attention[shard])
        return inputs

    return for_shard


def register_encode(catalog: Catalog, dataset: str, shard: int, key: str, backbone_model: str, needs: list[str],
                    attention_key: str | None, feature_parts: dict | None, result: dict) -> None:
    """``feature_parts`` (kind -> content key, kept in the artifact's meta) lets later runs find
    and reuse these features."""
    catalog.register_artifact("encode", key, shard, result["path"], result["rows"],
                              {"dataset": dataset, "backbone": backbone_model, "attention_key": attention_key, "grid": result["grid"],
                               "needs": sorted(needs), "parts": feature_parts or {}, "worker": result.get("worker")})


def read_features(path: str, embed_dim: int, kinds: set[str] | None = None) -> tuple[list[str], ImageFeatures]:
    """One shard's encode artifact -> (image ids, features); only the columns of ``kinds`` (all
    when None) are read."""
    import pyarrow.parquet as pq

    def kind(column: str) -> str:
        return "lgca" if column.startswith("lgca_") else column

    kinds = image_kinds() if kinds is None else set(kinds) | {"full"}
    table = read_artifact(path, columns=[c for c in pq.ParquetFile(path).schema_arrow.names if c == "image_id" or kind(c) in kinds])

    def get(name):
        return torch.from_numpy(unfixed(table[name], embed_dim)) if name in table.column_names else None
    lgca_cols = sorted((c for c in table.column_names if c.startswith("lgca_")), key=lambda c: int(c.split("_")[1]))
    features = ImageFeatures(full=get("full")[:, 0], raw=get("raw"), feat=get("feat"), wca=get("wca"),
                             lgca=[get(c) for c in lgca_cols] or None,
                             extra={name: get(name) for name in CROP_KINDS if name in table.column_names})
    return table["image_id"].to_pylist(), features


encode_compute_task = task(compute_encode, name="encode-shard", cache_policy=NONE)
