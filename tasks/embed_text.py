"""Stage 2: text embeddings of a (backbone, sentence sets) pair, to Parquet."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from glocal.encode import cache
from glocal.text.bank import TextBank, bank_from_sentences
from storage import Catalog, write_parquet_atomic
from tasks.artifact_formats import bank_table, text_bank_from_file


def embed_text(db: str, key: str, sentences_path: str, backbone_model: str) -> str:
    """sentences_path: JSON {classnames, prompts?, templates?, descriptions?, clip_d?, waffle?}."""
    catalog = Catalog(db)
    if 0 in catalog.finished_shards("text", key):
        return key
    sets = json.loads(Path(sentences_path).read_text())
    bank = bank_from_sentences(cache.backbone(backbone_model), sets)
    table = bank_table(bank)
    path = write_parquet_atomic(table, catalog.artifact_path("text", key, 0))
    catalog.register_artifact("text", key, 0, path, len(table), {"backbone": backbone_model, "classnames": sets["classnames"]})
    return key


def load_text_bank(db: str, key: str, classnames: list[str]) -> TextBank:
    return text_bank_from_file(Catalog(db).artifact_paths("text", key)[0], classnames)


embed_text_task = task(embed_text, name="embed-text", cache_policy=NONE)
