"""Stage 2: text embeddings of a (backbone, sentence sets) pair, to Parquet."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from prefect import task
from prefect.cache_policies import NONE

from glocal import cache
from glocal.text_kinds import TEXT_KINDS
from glocal.textbank import Padded, TextBank, build_text_bank
from storage import Catalog, fixed_lists, read_artifact, read_vectors, write_parquet_atomic

FIELDS = ("prompts", "templates", "descriptions", "clip_d", "waffle")


def embed_text(db: str, key: str, sentences_path: str, backbone_model: str) -> str:
    """sentences_path: JSON {classnames, prompts?, templates?, descriptions?, clip_d?, waffle?}."""
    catalog = Catalog(db)
    if 0 in catalog.finished_shards("text", key):
        return key
    sets = json.loads(Path(sentences_path).read_text())
    bank = build_text_bank(cache.backbone(backbone_model), sets["classnames"], **{f: sets.get(f) for f in FIELDS if f != "prompts"},
                           prompts=sets.get("prompts"), extra={name: sets[name] for name in TEXT_KINDS if name in sets})
    table = bank_table(bank)
    path = write_parquet_atomic(table, catalog.artifact_path("text", key, 0))
    catalog.register_artifact("text", key, 0, path, len(table), {"backbone": backbone_model, "classnames": sets["classnames"]})
    return key


def bank_table(bank: TextBank) -> pa.Table:
    """A text bank as rows (field, class_index, slot, embedding as float32 fixed-size lists),
    one per real sentence, built as arrays (no per-value Python objects)."""
    tables = []
    for field in (*FIELDS, *bank.extra):
        value = bank.need(field) if field in bank.extra else getattr(bank, field)
        if value is None:
            continue
        if isinstance(value, Padded):
            emb, mask = value.emb, value.mask
        elif value.dim() == 2:
            emb, mask = value[:, None], torch.ones(value.shape[0], 1, dtype=torch.bool)
        else:
            emb, mask = value, torch.ones(value.shape[:2], dtype=torch.bool)
        classes, slots = mask.nonzero(as_tuple=True)
        tables.append(pa.table({"field": pa.array([field] * len(classes), pa.string()),
                                "class_index": pa.array(classes.numpy().astype(np.int32)), "slot": pa.array(slots.numpy().astype(np.int32)),
                                "embedding": fixed_lists(emb[classes, slots].float().numpy(), np.float32)}))
    return pa.concat_tables(tables)


def load_text_bank(db: str, key: str, classnames: list[str]) -> TextBank:
    return text_bank_from_file(Catalog(db).artifact_paths("text", key)[0], classnames)


def text_bank_from_file(path, classnames: list[str]) -> TextBank:
    """The text embeddings of one text artifact (no database: workers call this). Arrays all the
    way, one field's rows copied at a time: ImageNet's bank is ~160,000 embeddings."""
    table = read_artifact(path, columns=["field", "class_index", "slot"])
    fields = table["field"].to_numpy(zero_copy_only=False)
    classes, slots = table["class_index"].to_numpy(), table["slot"].to_numpy()
    vectors = read_vectors(path, "embedding")
    values = {}
    for field in dict.fromkeys(fields.tolist()):
        rows = np.flatnonzero(fields == field)
        contiguous = rows[-1] - rows[0] + 1 == len(rows)  # as bank_table writes them: a view, not a copy
        embeddings = vectors[rows[0]:rows[-1] + 1] if contiguous else vectors[rows]
        emb = torch.zeros(len(classnames), int(slots[rows].max()) + 1, embeddings.shape[1])
        mask = torch.zeros(emb.shape[:2], dtype=torch.bool)
        index = (torch.from_numpy(classes[rows].astype(np.int64)), torch.from_numpy(slots[rows].astype(np.int64)))
        emb[index] = torch.from_numpy(np.ascontiguousarray(embeddings))
        mask[index] = True
        if not mask[:, 0].all():
            raise ValueError(f"{path}: {field} has no embedding for {int((~mask[:, 0]).sum())} class(es); the text artifact does not match the classes")
        values[field] = emb[:, 0] if field == "prompts" else emb if field == "templates" else Padded(emb, mask)
    extra = {name: values.pop(name) for name in list(values) if name not in FIELDS}  # registered text kinds
    return TextBank(classnames=classnames, **values, extra=extra)


@lru_cache(maxsize=2)
def cached_text_bank(path: str, classnames: tuple[str, ...]) -> TextBank:
    """A run's text embeddings read once per process (a Dask worker keeps them for every score
    shard it gets). Text artifacts are keyed by content, so a path always holds the same bank."""
    return text_bank_from_file(path, list(classnames))


embed_text_task = task(embed_text, name="embed-text", cache_policy=NONE)
