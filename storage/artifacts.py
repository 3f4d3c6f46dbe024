"""Parquet artifacts: written to a temporary name and renamed, so a file under its final name is
always complete (a killed writer leaves only a ``.tmp-*`` file, never a half artifact)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_parquet_atomic(table: pa.Table, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def read_artifact(path: str | os.PathLike) -> pa.Table:
    return pq.read_table(path)
