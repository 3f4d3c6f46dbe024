"""The workspace: one DuckDB file (default ``./glocal.duckdb``) and the artifacts folder beside it.

DuckDB allows one process to hold the file at a time (even a reader blocks a writer), so every
operation opens a short-lived connection and closes it; only the flow process writes. This module
holds the connection, the paths and the read-only SQL; each concern's tables have their own store
(``storage.artifact_index``, ``datasets``, ``runs``, ``descriptions``, ``studies``), and
``storage.catalog.Catalog`` is all of them.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from storage import held
from storage.schema import SCHEMA_VERSION, migrate, schema_version


@contextmanager
def _given_back(path: str, cursor):
    """A cursor on a held instance, closed after use; the instance is let go when it fails as a
    whole (DuckDB invalidates a database after a fatal error)."""
    failed = False
    try:
        yield cursor
    except duckdb.FatalException:
        failed = True
        raise
    finally:
        cursor.close()
        held.give_back(path)
        if failed:
            held.close_idle(path)


def insert_rows(con, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Bulk insert through Arrow (a table insert runs ~1000x faster than ``executemany``)."""
    if not rows:
        return
    con.register("_glocal_rows", pa.table({name: list(values) for name, values in zip(columns, zip(*rows))}))
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _glocal_rows")
    finally:
        con.unregister("_glocal_rows")


class WorkspaceBusy(RuntimeError):
    """Another process holds the workspace's DuckDB file longer than we wait."""


# database files (path, inode) this process has seen at the current schema version
_CURRENT: set[tuple] = set()


class Workspace:
    def __init__(self, path: str | os.PathLike | None = None, artifact_root: str | os.PathLike | None = None):
        # resolved once: the catalog stores paths relative to the workspace folder, so a workspace
        # works from any directory and can be moved or copied as a folder
        self.path = Path(path or os.environ.get("GLOCAL_DB", "glocal.duckdb")).resolve()
        self.artifact_root = Path(artifact_root).resolve() if artifact_root else self._default_artifact_root()
        self.path.parent.mkdir(parents=True, exist_ok=True)  # a new workspace's folder (commands that need one check first)
        self._upgrade_once(writer=True)

    def _identity(self) -> tuple:
        try:
            return (self.path, self.path.stat().st_ino)
        except FileNotFoundError:
            return (self.path, None)

    @classmethod
    def read_only(cls, path: str | os.PathLike):
        """A catalog whose queries never write (no schema creation): for `glocal sql` / `runs`."""
        catalog = cls.__new__(cls)
        catalog.path = Path(path).resolve()
        catalog.artifact_root = catalog._default_artifact_root()
        if not catalog.path.exists():
            raise FileNotFoundError(f"{catalog.path}: no glocal database here (run `glocal ingest` / `glocal evaluate` first, or set GLOCAL_DB)")
        catalog._upgrade_once(writer=False)
        return catalog

    def _upgrade_once(self, writer: bool) -> None:
        """Bring the database file to SCHEMA_VERSION, once per file per process (the file records
        its own version). A reader opens it for writing only when an older glocal wrote it (renamed
        columns would otherwise not read); a current one is only read."""
        if self._identity() in _CURRENT:
            return
        if not writer:
            with self.connect(read_only=True) as con:
                current = schema_version(con) == SCHEMA_VERSION
            if not current and not os.access(self.path, os.W_OK):
                raise ValueError(f"{self.path}: written by an older glocal and read-only here; a writable copy is "
                                 "upgraded on first use (its tables gain columns: top1_pct, top5_pct, ...)")
        if writer or not current:
            with self.connect() as con:
                migrate(con)
        _CURRENT.add(self._identity())

    def _default_artifact_root(self) -> Path:
        return Path(os.environ.get("GLOCAL_ARTIFACTS", self.path.parent / "artifacts")).resolve()

    @contextmanager
    def connect(self, read_only: bool = False, private: bool = False):
        """A short-lived connection. DuckDB lets one process hold the file at a time: while
        another glocal process holds it (a run registering a shard, a `glocal sql`), wait for it
        with backoff, up to $GLOCAL_LOCK_WAIT seconds (default 60), then say the workspace is busy.
        Inside ``storage.held.holding_workspaces()`` (a flow) the connection is a cursor on an
        instance kept open through the burst; ``private``: never such a cursor."""
        path = str(self.path)
        if private:
            held.close_idle(path)
        cursor = held.take(path, read_only) if held.holding() and not private else None
        if cursor is None:
            con = self._open(read_only)
            cursor = None if private else held.adopt(path, con, read_only)
            if cursor is None:  # outside a flow (or private): the connection is the operation's own
                try:
                    yield con
                finally:
                    con.close()
                return
        with _given_back(path, cursor):
            yield cursor

    def _open(self, read_only: bool):
        deadline, delay = time.monotonic() + float(os.environ.get("GLOCAL_LOCK_WAIT", "60")), 0.02
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    holder = re.search(r"PID (\d+)", str(exc))
                    raise WorkspaceBusy(f"workspace {self.path} is busy: another process{' (pid ' + holder.group(1) + ')' if holder else ''} "
                                        "holds it; wait for it to finish (or raise GLOCAL_LOCK_WAIT, seconds)") from None
                time.sleep(delay)
                delay = min(2 * delay, 0.5)

    def stored_path(self, path: str | os.PathLike) -> str:
        """How a path is kept in the catalog: relative to the workspace folder when inside it
        (the workspace moves as a folder), else absolute."""
        resolved = Path(path).resolve()
        try:
            return resolved.relative_to(self.path.parent).as_posix()
        except ValueError:
            return str(resolved)

    def contained(self, path: str | os.PathLike) -> Path:
        """``path`` resolved (symlinks followed), checked to lie inside the workspace's artifact
        folder before glocal writes or deletes there; ``ValueError`` otherwise."""
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.artifact_root):
            raise ValueError(f"{path}: refused: glocal writes and deletes only inside the workspace's artifacts folder {self.artifact_root}")
        return resolved

    def resolved_path(self, stored: str) -> Path:
        """A stored path as a usable one. Rows written before paths were workspace-relative hold
        paths relative to the directory glocal ran in: used when that is where the file is."""
        path = Path(stored)
        if path.is_absolute():
            return path
        inside = self.path.parent / path
        return inside if inside.exists() or not path.exists() else path.resolve()

    def _view_glob(self, stage: str) -> str:
        return str(self.artifact_root / stage / "*" / "shard-*.parquet").replace("'", "''")

    def _view_sql(self, stage: str) -> str:
        return f"SELECT * FROM read_parquet('{self._view_glob(stage)}', union_by_name = true, filename = true)"

    def _ensure_view(self, con, stage: str) -> None:
        # One view per stage over a glob of its Parquet files, so `glocal sql` can join them. Made
        # once per stage (a view over a path list, rebuilt per registration, was quadratic), and
        # again when the workspace has moved.
        current = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = ?", [f"{stage}_artifacts"]).fetchone()
        if current is None or self._view_glob(stage) not in current[0]:
            con.execute(f"CREATE OR REPLACE VIEW {stage}_artifacts AS {self._view_sql(stage)}")

    def _view_files(self) -> tuple[dict[str, list[Path]], list[str]]:
        """stage -> the Parquet files its temporary view reads, and notes on the files left out.
        Here every file under the stage's folder; the catalog (``storage.artifact_index``)
        narrows it to the registered files that check out."""
        stages = sorted(p.name for p in self.artifact_root.iterdir() if p.is_dir()) if self.artifact_root.is_dir() else []
        return {stage: sorted((self.artifact_root / stage).glob("*/shard-*.parquet")) for stage in stages}, []

    def query(self, sql: str, timeout_s: float = 60.0, memory_limit: str = "2GB", max_rows: int = 1_000_000
              ) -> tuple[list[str], list[tuple], list[str]]:
        """SQL for `glocal sql`, which cannot change anything: only SELECT statements (DuckDB's own
        parser decides; COPY ... TO, EXPORT, ATTACH, INSTALL/LOAD, SET, PRAGMA and the rest are
        refused), on a read-only connection that reads no file outside the workspace's artifacts
        and whose settings are locked. Bounded: DuckDB's memory within ``memory_limit``, the query
        interrupted after ``timeout_s`` seconds (so it never holds the workspace from a running
        evaluate for long), at most ``max_rows`` rows fetched. The ``*_artifacts`` views read the
        registered files that check out; a damaged one is left out and named in the notes.
        -> (columns, rows, notes)."""
        import threading

        files, notes = self._view_files()
        with self.connect(read_only=True, private=True) as con:  # its settings are locked: never a flow's shared instance
            refused = sorted({str(s.type).rsplit(".", 1)[-1] for s in con.extract_statements(sql)} - {"SELECT"})
            if refused:
                raise ValueError(f"glocal sql is read-only: it runs SELECT queries only; refused: {', '.join(refused)}")
            for stage, paths in files.items():
                if paths:
                    listed = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
                    con.execute(f"CREATE OR REPLACE TEMP VIEW {stage}_artifacts AS SELECT * FROM read_parquet([{listed}], "
                                "union_by_name = true, filename = true)")
            con.execute("SET memory_limit = ?", [memory_limit])
            con.execute("SET allowed_directories = ?", [[str(self.artifact_root) + os.sep]])
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            timer = threading.Timer(timeout_s, con.interrupt)
            timer.start()
            try:
                result = con.execute(sql)
                columns = [d[0] for d in result.description] if result.description else []
                rows = result.fetchmany(max_rows + 1)
            except duckdb.InterruptException:
                raise ValueError(f"the query ran past {timeout_s:g} s and was stopped; narrow it, or raise --timeout") from None
            except duckdb.OutOfMemoryException:
                raise ValueError(f"the query needs more than {memory_limit} of memory; narrow it, or raise --memory-limit") from None
            finally:
                timer.cancel()
        if len(rows) > max_rows:
            rows = rows[:max_rows]
            notes.append(f"only the first {max_rows:,} rows are shown; add a LIMIT or raise --max-rows")
        return columns, rows, notes

    def fetch_one(self, sql: str, args: list, missing: str, read_only: bool = False) -> tuple:
        """The one row ``sql`` selects; ``missing`` (the problem and its remedy) when there is none."""
        with self.connect(read_only=read_only) as con:
            row = con.execute(sql, args).fetchone()
        if row is None:
            raise ValueError(missing)
        return row
