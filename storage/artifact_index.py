"""Artifacts: which Parquet file holds each (stage, content key, shard), with its meta, and the
proof that the file is still the one registered.

Registering a file records its size, its sha256 and its modification time; a stage counts a
shard as finished only after ``finished_shards`` has checked the file again: missing, another
size or other bytes (a truncated, bit-flipped, swapped or foreign file) is reported once, its
row dropped and the file removed, so the same command recomputes it. The check costs a ``stat``
for a large file (encode features, text embeddings) whose size and modification time are as
when it was last checked, and a sha256 otherwise; files up to ``HASH_ALWAYS_BYTES`` (scores,
attention maps: about 1 and 2 KB per image) are hashed on every check. Parquet pages carry CRC
checksums that every pyarrow read verifies (``storage.artifacts``), which catches a flip inside
a large file whose modification time was put back.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb

from storage.workspace import Workspace

# files up to this size are hashed on every check (sha256 runs at ~1.5 GB/s on one core)
HASH_ALWAYS_BYTES = 64 * 2**20


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class Damage:
    """A registered artifact that is not what was registered."""

    stage: str
    key: str
    shard: int
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.stage} artifact {self.key[:12]} shard {self.shard} ({self.path}): {self.problem}"

    def report(self) -> str:
        """The one line a run reports it with."""
        return f"{self}; dropped, it is computed again"


def _report(damage: Damage) -> None:
    print(f"glocal: warning: {damage.report()}", file=sys.stderr)


class ArtifactIndex(Workspace):
    """Finished stage units, found by content key: a rerun skips them, a killed run resumes after
    them, and a damaged one is computed again."""

    # where a dropped artifact is reported (the flows send it to their run's log)
    on_damage: Callable[[Damage], None] = staticmethod(_report)

    def artifact_path(self, stage: str, key: str, shard: int) -> Path:
        return self.artifact_root / stage / key / f"shard-{shard:05d}.parquet"

    def register_artifact(self, stage: str, key: str, shard: int, path: Path, rows: int, meta: dict | None = None) -> None:
        """Called only after the Parquet file was renamed into place: its size, sha256 and
        modification time are recorded with it."""
        path = self.contained(path)
        stat = path.stat()
        digest = file_sha256(path)
        with self.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO artifacts (stage, key, shard, path, rows, meta, bytes, sha256, checked_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [stage, key, shard, self.stored_path(path), rows, json.dumps(meta or {}), stat.st_size, digest, stat.st_mtime_ns],
            )
            self._ensure_view(con, stage)

    def _problem(self, path: Path, rows: int, size: int | None, digest: str | None, checked_ns: int | None) -> tuple[str | None, dict]:
        """(what is wrong with the file, or None; the columns to record when it checked out anew)."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return "the file is missing", {}
        if size is None:  # registered before files were hashed: adopted when it reads as the rows registered
            try:
                import pyarrow.parquet as pq

                found = pq.read_metadata(path).num_rows
            except Exception as exc:  # noqa: BLE001 -- any unreadable file is damaged
                return f"not a readable Parquet file ({type(exc).__name__})", {}
            if found != rows:
                return f"{found} rows, {rows} registered", {}
            return None, {"bytes": stat.st_size, "sha256": file_sha256(path), "checked_ns": stat.st_mtime_ns}
        if stat.st_size != size:
            return f"{stat.st_size} bytes, {size} registered (truncated or replaced)", {}
        if stat.st_size > HASH_ALWAYS_BYTES and stat.st_mtime_ns == checked_ns:
            return None, {}
        if file_sha256(path) != digest:
            return "its bytes differ from those registered (sha256): altered or another file", {}
        return None, ({"checked_ns": stat.st_mtime_ns} if stat.st_mtime_ns != checked_ns else {})

    def checked_artifacts(self, stage: str, key: str | None = None) -> tuple[dict[tuple[str, int], Path], list[Damage], dict]:
        """Every registered artifact of ``stage`` (of ``key`` only, when given), checked:
        ({(key, shard): path} of the good ones, the damaged ones, {(key, shard): columns to record})."""
        sql = "SELECT key, shard, path, rows, bytes, sha256, checked_ns FROM artifacts WHERE stage = ?"
        args = [stage]
        if key is not None:
            sql += " AND key = ?"
            args.append(key)
        with self.connect(read_only=True) as con:
            try:
                rows = con.execute(sql + " ORDER BY key, shard", args).fetchall()
            except duckdb.BinderException:  # a workspace not yet migrated (read-only commands do not migrate): no hashes yet
                rows = con.execute(sql.replace("bytes, sha256, checked_ns", "NULL, NULL, NULL") + " ORDER BY key, shard", args).fetchall()
        good, damaged, updates = {}, [], {}
        for row_key, shard, stored, count, size, digest, checked_ns in rows:
            path = self.resolved_path(stored)
            problem, update = self._problem(path, count, size, digest, checked_ns)
            if problem:
                damaged.append(Damage(stage, row_key, shard, stored, problem))
                continue
            good[(row_key, shard)] = path
            if update:
                updates[(row_key, shard)] = update
        return good, damaged, updates

    def finished_shards(self, stage: str, key: str) -> set[int]:
        """The shards of (stage, key) whose files are what was registered. A damaged one is
        reported (``on_damage``), dropped from the catalog and its file removed, so the caller
        computes it again."""
        good, damaged, updates = self.checked_artifacts(stage, key)
        if damaged or updates:
            with self.connect() as con:
                for (row_key, shard), update in updates.items():
                    con.execute(f"UPDATE artifacts SET {', '.join(f'{c} = ?' for c in update)} WHERE stage = ? AND key = ? AND shard = ?",
                                [*update.values(), stage, row_key, shard])
                for damage in damaged:
                    con.execute("DELETE FROM artifacts WHERE stage = ? AND key = ? AND shard = ?", [stage, damage.key, damage.shard])
        for damage in damaged:
            path = self.resolved_path(damage.path)
            if path.is_file() and path.resolve().is_relative_to(self.artifact_root):
                path.unlink()  # never read again, not even by the SQL views' globs
            self.on_damage(damage)
        return {shard for _, shard in good}

    def _view_files(self) -> tuple[dict[str, list[Path]], list[str]]:
        """For `glocal sql`'s views: each stage's registered files that check out (read-only: a
        damaged one is named, not dropped; the next run that needs it drops and recomputes it)."""
        with self.connect(read_only=True) as con:
            stages = [row[0] for row in con.execute("SELECT DISTINCT stage FROM artifacts ORDER BY stage").fetchall()]
        files, notes = {}, []
        for stage in stages:
            good, damaged, _ = self.checked_artifacts(stage)
            files[stage] = [path for _, path in sorted(good.items())]
            notes += [f"{stage}_artifacts leaves out {damage}" for damage in damaged]
        return files, notes

    def registered_rows(self, stage: str, key: str) -> dict[int, int]:
        with self.connect(read_only=True) as con:
            return dict(con.execute("SELECT shard, rows FROM artifacts WHERE stage = ? AND key = ?", [stage, key]).fetchall())

    def covering_encode(self, parts: dict[str, str], shards: int) -> str | None:
        """A complete encode artifact whose feature kinds include ``parts`` with the same part
        keys (so its features are exactly those a fresh encode would compute), and whose every
        shard checks out, else None."""
        with self.connect() as con:
            rows = con.execute("SELECT key, any_value(meta) FROM artifacts WHERE stage = 'encode' GROUP BY key HAVING count(*) = ?"
                               " ORDER BY min(created_at)", [shards]).fetchall()
        for key, meta in rows:
            stored = json.loads(meta or "{}").get("parts", {})
            if all(stored.get(kind) == value for kind, value in parts.items()) and len(self.finished_shards("encode", key)) == shards:
                return key
        return None

    def artifact_paths(self, stage: str, key: str) -> dict[int, Path]:
        """Registered paths, unchecked: read them after ``finished_shards`` (or ``checked_artifacts``)."""
        with self.connect() as con:
            rows = con.execute("SELECT shard, path FROM artifacts WHERE stage = ? AND key = ? ORDER BY shard", [stage, key]).fetchall()
        return {shard: self.resolved_path(path) for shard, path in rows}

    def artifact_meta(self, stage: str, key: str) -> dict[int, dict]:
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT shard, meta FROM artifacts WHERE stage = ? AND key = ?", [stage, key]).fetchall()
        return {shard: json.loads(meta or "{}") for shard, meta in rows}
