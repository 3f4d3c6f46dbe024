"""Stage 2: text embeddings, one artifact per (backbone, text kind, sentences), to Parquet. A run
needing a new mix of methods embeds only the kinds the workspace does not hold yet: ImageNet's
70,000 CuPL sentences are embedded once per backbone, whatever else a run adds."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from glocal.encode import cache
from glocal.text.bank import bank_from_sentences
from storage import Catalog, write_parquet_atomic
from tasks.artifact_formats import bank_table


def embed_text(db: str, key: str, kind_keys: dict[str, str], sentences_path: str, backbone_model: str) -> tuple[list[str], int]:
    """``key``: the run's text key (all its sentence sets); ``kind_keys``: each text kind's own
    key (``glocal.run.plan.RunPlan.text_kind_keys``); ``sentences_path``: JSON {classnames, kind:
    sentences per class}. -> (the text artifact files that hold every kind: the run's whole-set
    artifact where a workspace written before per-kind keys has it, else one file per kind; how
    many kinds were embedded now, the rest being stored already)."""
    catalog = Catalog(db)
    if 0 in catalog.finished_shards("text", key):
        return [str(catalog.artifact_paths("text", key)[0])], 0
    sets, computed = None, 0
    for kind, kind_key in kind_keys.items():
        if 0 in catalog.finished_shards("text", kind_key):
            continue
        sets = sets or json.loads(Path(sentences_path).read_text())
        bank = bank_from_sentences(cache.backbone(backbone_model), {"classnames": sets["classnames"], kind: sets[kind]})
        table = bank_table(bank)
        path = write_parquet_atomic(table, catalog.artifact_path("text", kind_key, 0))
        catalog.register_artifact("text", kind_key, 0, path, len(table), {"backbone": backbone_model, "kind": kind})
        computed += 1
    return [str(catalog.artifact_paths("text", kind_key)[0]) for kind_key in kind_keys.values()], computed


embed_text_task = task(embed_text, name="embed-text", cache_policy=NONE)
