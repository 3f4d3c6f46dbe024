"""Stage 4: per shard, the full-image feature and every crop feature the methods need, as float16
fixed-size lists in Parquet, with the boxes used."""

from __future__ import annotations

from typing import Callable

import torch
from prefect import task
from prefect.cache_policies import NONE

from glocal.encode import cache
from glocal.kinds import kind_by_config_key, text_guided
from glocal.encode.engine import EngineConfig, encode_features
from glocal.data.shards import stream_images
from storage import Catalog, read_artifact, write_parquet_atomic
from tasks.artifact_formats import feature_table, shard_path, text_bank_from_files


def encode_images(backbone, images, ids, needs, configs, maps, frame, class_embeddings, engine: EngineConfig):
    """The compute of this stage (a seam for tests that interrupt a run): the batched engine;
    ``images`` is consumed once, in order."""
    return encode_features(backbone, images, ids, needs, attention_maps=maps, attention_frame=frame,
                           class_embeddings=class_embeddings, engine=engine, **configs)


def compute_encode(shard_file: str, out_path: str, backbone_model: str, needs: list[str], configs: dict,
                   attention_file: str | None = None, text_files: list[str] | None = None, classnames: list[str] | None = None,
                   batch_size: int = 64, compile: bool = False, crop_rounding: str = "floor", precision: str = "fp32") -> dict:
    """The worker side of one shard: no database. Reads the shard (and its attention maps and the
    text embeddings LGCA needs), encodes, writes ``out_path`` atomically. -> {path, rows, grid, worker}."""
    ids, images = stream_images(shard_file)
    configs = {key: kind_by_config_key(key).config(**value) for key, value in configs.items()}
    maps, frame = None, "stretch"
    if attention_file:
        table = read_artifact(attention_file).to_pydict()
        order = {image_id: i for i, image_id in enumerate(table["image_id"])}
        grid = table["grid"][0]
        maps = torch.tensor([table["attention"][order[i]] for i in ids]).reshape(-1, grid, grid)
        frame = table["frame"][0]
    class_embeddings = None
    if text_guided(needs):
        class_embeddings = text_bank_from_files(text_files, classnames).descriptions.class_means()
    backbone = cache.backbone(backbone_model, crop_rounding)
    engine = EngineConfig(batch_size=batch_size, compile=compile, precision=precision)
    features, record = encode_images(backbone, images, ids, set(needs), configs, maps, frame, class_embeddings, engine)
    path = write_parquet_atomic(feature_table(ids, features, record), out_path)
    return {"path": str(path), "rows": len(ids), "grid": backbone.grid, "worker": cache.worker_tag()}


def encode_inputs(catalog: Catalog, info: dict, key: str, attention_key: str | None, text_files: list[str] | None,
                  needs: list[str]) -> Callable[[int], dict]:
    """shard -> the file paths a worker needs for it; the catalog is read once, here in the flow
    process, not once per shard. ``info``: the dataset's catalog entry."""
    attention = catalog.artifact_paths("attention", attention_key) if attention_key else {}
    lgca = {"text_files": text_files, "classnames": info["classnames"]} if text_guided(needs) else {}

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


encode_compute_task = task(compute_encode, name="encode-shard", cache_policy=NONE)
