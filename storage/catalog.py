"""The workspace catalog: one DuckDB file (default ``./glocal.duckdb``).

DuckDB allows one process to hold the file at a time (even a reader blocks a writer), so every
operation opens a short-lived connection and closes it; only the flow process writes.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import duckdb

SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
    stage VARCHAR, key VARCHAR, shard INTEGER, path VARCHAR, rows INTEGER, meta JSON,
    created_at TIMESTAMP DEFAULT current_timestamp, PRIMARY KEY (stage, key, shard));
CREATE TABLE IF NOT EXISTS images (
    dataset VARCHAR, image_id VARCHAR, shard INTEGER, label INTEGER, width INTEGER, height INTEGER,
    PRIMARY KEY (dataset, image_id));
CREATE TABLE IF NOT EXISTS datasets (
    dataset VARCHAR PRIMARY KEY, root VARCHAR, classnames JSON, shards INTEGER, shard_dir VARCHAR);
CREATE TABLE IF NOT EXISTS bad_images (
    dataset VARCHAR, image_id VARCHAR, reason VARCHAR, PRIMARY KEY (dataset, image_id));
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, dataset VARCHAR, backbone VARCHAR, attention VARCHAR,
    methods JSON, configs JSON, text_key VARCHAR, status VARCHAR,
    created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS predictions (
    run_id VARCHAR, method VARCHAR, preset_hash VARCHAR, image_id VARCHAR, label INTEGER,
    prediction INTEGER, correct BOOLEAN, top5 INTEGER[], top5_scores FLOAT[],
    PRIMARY KEY (run_id, method, image_id));
CREATE TABLE IF NOT EXISTS accuracy (
    run_id VARCHAR, method VARCHAR, preset_hash VARCHAR, images INTEGER, top1 DOUBLE,
    PRIMARY KEY (run_id, method));
"""


class Catalog:
    def __init__(self, path: str | os.PathLike | None = None, artifact_root: str | os.PathLike | None = None):
        self.path = Path(path or os.environ.get("GLOCAL_DB", "glocal.duckdb"))
        self.artifact_root = Path(artifact_root or os.environ.get("GLOCAL_ARTIFACTS", self.path.parent / "artifacts"))
        with self.connect() as con:
            con.execute(SCHEMA)

    @classmethod
    def read_only(cls, path: str | os.PathLike) -> "Catalog":
        """A catalog whose queries never write (no schema creation): for `glocal sql` / `runs`."""
        catalog = cls.__new__(cls)
        catalog.path = Path(path)
        catalog.artifact_root = catalog.path.parent / "artifacts"
        if not catalog.path.exists():
            raise FileNotFoundError(f"{catalog.path}: no glocal database here (run `glocal ingest` / `glocal evaluate` first, or set GLOCAL_DB)")
        return catalog

    @contextmanager
    def connect(self, read_only: bool = False):
        con = duckdb.connect(str(self.path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    # ----------------------------------------------------------------- artifacts
    def artifact_path(self, stage: str, key: str, shard: int) -> Path:
        return self.artifact_root / stage / key / f"shard-{shard:05d}.parquet"

    def finished_shards(self, stage: str, key: str) -> set[int]:
        with self.connect() as con:
            rows = con.execute("SELECT shard FROM artifacts WHERE stage = ? AND key = ?", [stage, key]).fetchall()
        return {r[0] for r in rows}

    def register_artifact(self, stage: str, key: str, shard: int, path: Path, rows: int, meta: dict | None = None) -> None:
        """Called only after the Parquet file was renamed into place."""
        with self.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO artifacts (stage, key, shard, path, rows, meta) VALUES (?, ?, ?, ?, ?, ?)",
                [stage, key, shard, str(path), rows, json.dumps(meta or {})],
            )
            self._refresh_view(con, stage)

    def artifact_paths(self, stage: str, key: str) -> dict[int, Path]:
        with self.connect() as con:
            rows = con.execute("SELECT shard, path FROM artifacts WHERE stage = ? AND key = ? ORDER BY shard", [stage, key]).fetchall()
        return {shard: Path(path) for shard, path in rows}

    @staticmethod
    def _refresh_view(con, stage: str) -> None:
        # One view per stage over all its Parquet files, so `glocal sql` can join them.
        paths = [r[0] for r in con.execute("SELECT path FROM artifacts WHERE stage = ? ORDER BY key, shard", [stage]).fetchall()]
        listing = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
        con.execute(f"CREATE OR REPLACE VIEW {stage}_artifacts AS SELECT * FROM read_parquet([{listing}], union_by_name = true, filename = true)")

    # ----------------------------------------------------------------- datasets
    def register_dataset(self, dataset: str, root: str, classnames: list[str], shards: int, shard_dir: str, images: list[tuple], bad: list[tuple]) -> None:
        with self.connect() as con:
            con.execute("BEGIN")
            con.execute("INSERT OR REPLACE INTO datasets VALUES (?, ?, ?, ?, ?)", [dataset, root, json.dumps(classnames), shards, shard_dir])
            con.execute("DELETE FROM images WHERE dataset = ?", [dataset])
            if images:
                con.executemany("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?)", [(dataset, *row) for row in images])
            con.execute("DELETE FROM bad_images WHERE dataset = ?", [dataset])
            if bad:
                con.executemany("INSERT INTO bad_images VALUES (?, ?, ?)", [(dataset, *row) for row in bad])
            con.execute("COMMIT")

    def dataset(self, dataset: str) -> dict:
        with self.connect() as con:
            row = con.execute("SELECT root, classnames, shards, shard_dir FROM datasets WHERE dataset = ?", [dataset]).fetchone()
        if row is None:
            raise ValueError(f"dataset {dataset!r} is not ingested; run `glocal ingest {dataset} <folder>` first")
        return {"root": row[0], "classnames": json.loads(row[1]), "shards": row[2], "shard_dir": row[3]}

    def manifest(self, dataset: str, shard: int | None = None) -> list[tuple[str, int, int]]:
        """(image_id, shard, label) in shard order."""
        sql = "SELECT image_id, shard, label FROM images WHERE dataset = ?"
        args: list = [dataset]
        if shard is not None:
            sql += " AND shard = ?"
            args.append(shard)
        with self.connect() as con:
            return con.execute(sql + " ORDER BY shard, image_id", args).fetchall()

    # ----------------------------------------------------------------- runs and scores
    def start_run(self, run_id: str, dataset: str, backbone: str, attention: str, methods: list[str], configs: dict, text_key: str) -> None:
        with self.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO runs (run_id, dataset, backbone, attention, methods, configs, text_key, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'running')",
                [run_id, dataset, backbone, attention, json.dumps(methods), json.dumps(configs), text_key],
            )

    def store_predictions(self, run_id: str, rows: list[tuple], accuracy: list[tuple]) -> None:
        """Replace a run's predictions and accuracy in one transaction (idempotent on rerun)."""
        with self.connect() as con:
            con.execute("BEGIN")
            con.execute("DELETE FROM predictions WHERE run_id = ?", [run_id])
            con.execute("DELETE FROM accuracy WHERE run_id = ?", [run_id])
            con.executemany("INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            con.executemany("INSERT INTO accuracy VALUES (?, ?, ?, ?, ?)", accuracy)
            con.execute("UPDATE runs SET status = 'done' WHERE run_id = ?", [run_id])
            con.execute("COMMIT")

    def accuracy(self, run_id: str | None = None) -> list[tuple]:
        sql = "SELECT a.run_id, r.dataset, r.backbone, a.method, a.images, a.top1 FROM accuracy a JOIN runs r USING (run_id)"
        args = []
        if run_id:
            sql += " WHERE a.run_id = ?"
            args.append(run_id)
        with self.connect(read_only=True) as con:
            return con.execute(sql + " ORDER BY r.created_at, a.run_id, a.method", args).fetchall()

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        """Read-only SQL for `glocal sql`."""
        with self.connect(read_only=True) as con:
            result = con.execute(sql)
            columns = [d[0] for d in result.description] if result.description else []
            return columns, result.fetchall()
