"""How each stage's artifacts are laid out, for the stage that writes them and the stages that
read them (no stage module imports another): ingest's shard files, the text stage's embedding
table, the encode stage's feature table. No database here: workers call these.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from glocal.kinds.features import CropRecord, ImageFeatures
from glocal.kinds import CROP_KINDS, image_kinds, kinds_for
from glocal.text.kinds import text_form
from glocal.text.bank import Padded, TextBank
from storage import fixed_lists, read_artifact, read_vectors, unfixed



def shard_path(shard_dir: str, shard: int) -> Path:
    return Path(shard_dir) / f"shard-{shard:05d}.tar"


def bank_table(bank: TextBank) -> pa.Table:
    """A text bank as rows (field, class_index, slot, embedding as float32 fixed-size lists),
    one per real sentence, built as arrays (no per-value Python objects)."""
    tables = []
    for field, value in bank.sets.items():
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
        values[field] = STORED_FORMS[text_form(field)](emb, mask)
    return TextBank(classnames, values)


# a text kind's form -> its embeddings from the stored (C, M, D) rows and their mask
STORED_FORMS = {"one": lambda emb, mask: emb[:, 0], "fixed": lambda emb, mask: emb, "ragged": Padded}


def text_bank_from_files(paths: list[str], classnames: list[str]) -> TextBank:
    """A run's text embeddings from its text artifacts (one per text kind; one for all of them in
    a workspace written before per-kind keys)."""
    values = {}
    for path in paths:
        values.update(text_bank_from_file(path, classnames).sets)
    return TextBank(classnames, values)


def cached_text_bank(paths: list[str], classnames: tuple[str, ...]) -> TextBank:
    """A run's text embeddings read once per process (a Dask worker keeps them for every score
    shard it gets). Text artifacts are keyed by content; each file's size and modification time
    are part of the cache key too, so a file recomputed after damage is read again."""
    stats = tuple((path, Path(path).stat().st_size, Path(path).stat().st_mtime_ns) for path in paths)
    return _text_bank(stats, classnames)


@lru_cache(maxsize=2)
def _text_bank(stats: tuple[tuple[str, int, int], ...], classnames: tuple[str, ...]) -> TextBank:
    return text_bank_from_files([path for path, _, _ in stats], list(classnames))


def feature_table(ids: list[str], features: ImageFeatures, record: CropRecord) -> pa.Table:
    """One shard's encode artifact: the full-image feature, and each crop kind's columns (its
    features as float16 fixed-size lists, the geometry it used as int32)."""
    columns = {"image_id": pa.array(ids), "full": fixed_lists(features.full.numpy(), np.float16)}
    for kind in kinds_for(record.outputs):  # each kind's features (float16) and the geometry it used (int32)
        for name, value in kind.stored(record.outputs[kind.name]).items():
            columns[name] = fixed_lists(value.reshape(len(ids), -1).numpy(), np.float16 if value.is_floating_point() else np.int32)
    return pa.table(columns)


def read_features(path: str, embed_dim: int, kinds: set[str] | None = None) -> tuple[list[str], ImageFeatures]:
    """One shard's encode artifact -> (image ids, features); only the columns of ``kinds`` (all
    when None) are read."""
    import pyarrow.parquet as pq

    wanted = kinds_for(image_kinds() if kinds is None else kinds)
    names = pq.ParquetFile(path).schema_arrow.names
    owned = {kind.name: [c for c in names if kind.owns(c)] for kind in wanted}
    table = read_artifact(path, columns=["image_id", "full", *(c for columns in owned.values() for c in columns)])

    def get(name):
        return torch.from_numpy(unfixed(table[name], embed_dim))

    ids = table["image_id"].to_pylist()
    features = ImageFeatures(full=get("full")[:, 0],
                             crops={name: CROP_KINDS[name].load({c: get(c) for c in columns}) for name, columns in owned.items() if columns},
                             image_ids=ids)
    return ids, features
