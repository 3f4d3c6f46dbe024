"""Artifacts: which Parquet file holds each (stage, content key, shard), with its meta."""

from __future__ import annotations

import json
from pathlib import Path

from storage.workspace import Workspace


class ArtifactIndex(Workspace):
    """Finished stage units, found by content key: a rerun skips them, a killed run resumes after them."""

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
                [stage, key, shard, self.stored_path(path), rows, json.dumps(meta or {})],
            )
            self._ensure_view(con, stage)

    def covering_encode(self, parts: dict[str, str], shards: int) -> str | None:
        """A complete encode artifact whose feature kinds include ``parts`` with the same part
        keys (so its features are exactly those a fresh encode would compute), else None."""
        with self.connect() as con:
            rows = con.execute("SELECT key, any_value(meta) FROM artifacts WHERE stage = 'encode' GROUP BY key HAVING count(*) = ?"
                               " ORDER BY min(created_at)", [shards]).fetchall()
        for key, meta in rows:
            stored = json.loads(meta or "{}").get("parts", {})
            if all(stored.get(kind) == value for kind, value in parts.items()):
                return key
        return None

    def artifact_paths(self, stage: str, key: str) -> dict[int, Path]:
        with self.connect() as con:
            rows = con.execute("SELECT shard, path FROM artifacts WHERE stage = ? AND key = ? ORDER BY shard", [stage, key]).fetchall()
        return {shard: self.resolved_path(path) for shard, path in rows}

    def artifact_meta(self, stage: str, key: str) -> dict[int, dict]:
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT shard, meta FROM artifacts WHERE stage = ? AND key = ?", [stage, key]).fetchall()
        return {shard: json.loads(meta or "{}") for shard, meta in rows}
