"""Stage 5: per shard, every requested method's scores from that shard's stored features and the
run's text embeddings -> the shard's predictions as Parquet. The flow loads every shard's
predictions into DuckDB in one bulk insert and computes accuracy there, in SQL.

``compute_score`` is the worker side (no database, one shard's features in memory, methods
chunked within ``memory`` bytes); ``score_inputs`` and ``register_score`` are the flow side. A
rerun scores only the shards not yet stored; re-scoring never re-encodes images.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa
import torch
from prefect import task
from prefect.cache_policies import NONE

from glocal.encode import cache
from glocal.methods.budget import DEFAULT_SCORE_MEMORY
from glocal.config import config_hash
from glocal.run.scoring import restrict_classes
from glocal.run.plan import image_needs, runs_from_configs
from glocal.data.shards import shard_ids
from storage import Catalog, write_parquet_atomic
from tasks.artifact_formats import cached_text_bank, read_features, shard_path

TOP_K = 5
PREDICTIONS = pa.schema([
    ("run_id", pa.string()), ("method", pa.string()), ("preset_hash", pa.string()), ("image_id", pa.string()),
    ("label", pa.int32()), ("prediction", pa.int32()), ("correct", pa.bool_()),
    ("top5", pa.list_(pa.int32())), ("top5_scores", pa.list_(pa.float32())),
    # a method scored over several draws (WCA's official protocol): each draw's top-1, in order;
    # the columns above hold draw 0's. Null for a method scored once.
    ("draw_predictions", pa.list_(pa.int32())),
])


def _lists(values: torch.Tensor, dtype) -> pa.Array:
    """(n, k) -> a list<k values> column (DuckDB's INTEGER[] / FLOAT[])."""
    n, k = values.shape
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), pa.array(values.reshape(-1).numpy().astype(dtype)))


def predictions_table(run_id: str, method: str, preset_hash: str, ids: list[str], labels: torch.Tensor, scores: torch.Tensor,
                      draw_predictions: torch.Tensor | None = None) -> pa.Table:
    """(n, C) scores of one method on one shard -> its prediction rows (top-k in the full label
    space); ``draw_predictions`` (n, draws): every draw's top-1 when the method has draws."""
    top = scores.topk(min(TOP_K, scores.shape[1]), dim=1)
    prediction = top.indices[:, 0]
    n = len(ids)
    return pa.table({
        "run_id": pa.array([run_id] * n, pa.string()), "method": pa.array([method] * n, pa.string()),
        "preset_hash": pa.array([preset_hash] * n, pa.string()), "image_id": pa.array(ids, pa.string()),
        "label": pa.array(labels.numpy().astype(np.int32)), "prediction": pa.array(prediction.numpy().astype(np.int32)),
        "correct": pa.array((prediction == labels).numpy()),
        "top5": _lists(top.indices, np.int32), "top5_scores": _lists(top.values, np.float32),
        "draw_predictions": _lists(draw_predictions, np.int32) if draw_predictions is not None else pa.nulls(n, pa.list_(pa.int32())),
    }, schema=PREDICTIONS)


def compute_score(run_id: str, configs: dict[str, dict], encode_file: str, shard_file: str, text_files: list[str], classnames: list[str],
                  class_subset: list[int] | None, out_path: str, memory: int = DEFAULT_SCORE_MEMORY) -> dict:
    """The worker side of one shard: reads its features (only the kinds the methods use), labels
    (the shard's json members) and the text bank (loaded once per process), scores every method,
    writes ``out_path`` atomically. -> {path, rows, worker}."""
    runs = runs_from_configs(configs)
    bank = cached_text_bank(text_files, tuple(classnames))
    ids, features = read_features(encode_file, bank.dim, image_needs(runs))
    label_of = dict(shard_ids(shard_file))
    missing = [i for i in ids if i not in label_of]
    if missing:
        raise RuntimeError(f"{encode_file}: {len(missing)} image(s) not in {shard_file} (e.g. {missing[0]!r}); "
                           "the features are stale for this dataset: re-run evaluate (re-ingest made new shards)")
    labels = torch.tensor([label_of[i] for i in ids], dtype=torch.long)
    tables = []
    for run in runs:
        draws = [restrict_classes(run.spec.score(features, bank, run.config, memory, draw).float(), class_subset)
                 for draw in range(run.spec.draws_for(run.config))]
        per_draw = torch.stack([s.argmax(1) for s in draws], dim=1) if len(draws) > 1 else None
        tables.append(predictions_table(run_id, run.spec.name, config_hash(run.config), ids, labels, draws[0], per_draw))
    path = write_parquet_atomic(pa.concat_tables(tables), out_path)
    return {"path": str(path), "rows": len(ids) * len(runs), "worker": cache.worker_tag()}


def score_inputs(catalog: Catalog, info: dict, key: str, encode_key: str, text_files: list[str]) -> Callable[[int], dict]:
    """shard -> the file paths a worker needs for it (the catalog read once, here in the flow);
    ``text_files``: the run's text artifacts (``tasks.embed_text.embed_text``)."""
    encode = catalog.artifact_paths("encode", encode_key)

    def for_shard(shard: int) -> dict:
        return {"encode_file": str(encode[shard]), "shard_file": str(shard_path(info["shard_dir"], shard)), "text_files": text_files,
                "classnames": info["classnames"], "class_subset": info["class_subset"],
                "out_path": str(catalog.artifact_path("score", key, shard))}

    return for_shard


def register_score(catalog: Catalog, run_id: str, shard: int, key: str, result: dict) -> None:
    catalog.register_artifact("score", key, shard, result["path"], result["rows"], {"run_id": run_id, "worker": result.get("worker")})


score_compute_task = task(compute_score, name="score-shard", cache_policy=NONE)
