"""Stage 2: text embeddings of a (backbone, sentence sets) pair, to Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import torch
from prefect import task
from prefect.cache_policies import NONE

from glocal import cache
from glocal.textbank import Padded, TextBank, build_text_bank
from storage import Catalog, read_artifact, write_parquet_atomic

FIELDS = ("prompts", "templates", "descriptions", "clip_d", "waffle")


def embed_text(db: str, key: str, sentences_path: str, backbone_model: str) -> str:
    """sentences_path: JSON {classnames, prompts?, templates?, descriptions?, clip_d?, waffle?}."""
    catalog = Catalog(db)
    if 0 in catalog.finished_shards("text", key):
        return key
    sets = json.loads(Path(sentences_path).read_text())
    bank = build_text_bank(cache.backbone(backbone_model), sets["classnames"], **{f: sets.get(f) for f in FIELDS if f != "prompts"}, prompts=sets.get("prompts"))
    rows = {"field": [], "class_index": [], "slot": [], "embedding": []}
    for field in FIELDS:
        value = getattr(bank, field)
        if value is None:
            continue
        if isinstance(value, Padded):
            emb, mask = value.emb, value.mask
        elif value.dim() == 2:
            emb, mask = value[:, None], torch.ones(value.shape[0], 1, dtype=torch.bool)
        else:
            emb, mask = value, torch.ones(value.shape[:2], dtype=torch.bool)
        for c, m in mask.nonzero().tolist():
            rows["field"].append(field)
            rows["class_index"].append(c)
            rows["slot"].append(m)
            rows["embedding"].append(emb[c, m].tolist())
    path = write_parquet_atomic(pa.table(rows), catalog.artifact_path("text", key, 0))
    catalog.register_artifact("text", key, 0, path, len(rows["field"]), {"backbone": backbone_model, "classnames": sets["classnames"]})
    return key


def load_text_bank(db: str, key: str, classnames: list[str]) -> TextBank:
    return text_bank_from_file(Catalog(db).artifact_paths("text", key)[0], classnames)


def text_bank_from_file(path, classnames: list[str]) -> TextBank:
    """The text embeddings of one text artifact (no database: workers call this)."""
    table = read_artifact(path).to_pydict()
    groups: dict[str, dict[int, list]] = {}
    for field, c, slot, emb in zip(table["field"], table["class_index"], table["slot"], table["embedding"]):
        groups.setdefault(field, {}).setdefault(c, []).append((slot, emb))
    values = {}
    for field, per_class in groups.items():
        lists = [torch.tensor([e for _, e in sorted(per_class[c])]) for c in range(len(classnames))]
        if field == "prompts":
            values[field] = torch.cat(lists)
        elif field == "templates":
            values[field] = torch.stack(lists)
        else:
            values[field] = Padded.from_lists(lists)
    return TextBank(classnames=classnames, **values)


embed_text_task = task(embed_text, name="embed-text", cache_policy=NONE)
