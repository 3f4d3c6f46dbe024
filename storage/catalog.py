"""The workspace catalog: one DuckDB file (default ``./glocal.duckdb``).

DuckDB allows one process to hold the file at a time (even a reader blocks a writer), so every
operation opens a short-lived connection and closes it; only the flow process writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from storage.schema import migrate



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


DESCRIPTION_COLUMNS = ("set_id", "class_index", "classname", "slot", "sentence")


# database files (path, inode) this process has seen at the current schema version
_CURRENT: set[tuple] = set()


class Catalog:
    def __init__(self, path: str | os.PathLike | None = None, artifact_root: str | os.PathLike | None = None):
        # resolved once: the catalog stores paths relative to the workspace folder, so a workspace
        # works from any directory and can be moved or copied as a folder
        self.path = Path(path or os.environ.get("GLOCAL_DB", "glocal.duckdb")).resolve()
        self.artifact_root = Path(artifact_root).resolve() if artifact_root else self._default_artifact_root()
        self.path.parent.mkdir(parents=True, exist_ok=True)  # a new workspace's folder (commands that need one check first)
        if self._identity() not in _CURRENT:  # once per database file per process; the file records its own version
            with self.connect() as con:
                migrate(con)
            _CURRENT.add(self._identity())

    def _identity(self) -> tuple:
        try:
            return (self.path, self.path.stat().st_ino)
        except FileNotFoundError:
            return (self.path, None)

    @classmethod
    def read_only(cls, path: str | os.PathLike) -> "Catalog":
        """A catalog whose queries never write (no schema creation): for `glocal sql` / `runs`."""
        catalog = cls.__new__(cls)
        catalog.path = Path(path).resolve()
        catalog.artifact_root = catalog._default_artifact_root()
        if not catalog.path.exists():
            raise FileNotFoundError(f"{catalog.path}: no glocal database here (run `glocal ingest` / `glocal evaluate` first, or set GLOCAL_DB)")
        return catalog

    def _default_artifact_root(self) -> Path:
        return Path(os.environ.get("GLOCAL_ARTIFACTS", self.path.parent / "artifacts")).resolve()

    @contextmanager
    def connect(self, read_only: bool = False):
        """A short-lived connection. DuckDB lets one process hold the file at a time: while
        another glocal process holds it (a run registering a shard, a `glocal sql`), wait for it
        with backoff, up to $GLOCAL_LOCK_WAIT seconds (default 60), then say the workspace is busy."""
        deadline, delay = time.monotonic() + float(os.environ.get("GLOCAL_LOCK_WAIT", "60")), 0.02
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    holder = re.search(r"PID (\d+)", str(exc))
                    raise WorkspaceBusy(f"workspace {self.path} is busy: another process{' (pid ' + holder.group(1) + ')' if holder else ''} "
                                        "holds it; wait for it to finish (or raise GLOCAL_LOCK_WAIT, seconds)") from None
                time.sleep(delay)
                delay = min(2 * delay, 0.5)
        try:
            yield con
        finally:
            con.close()

    # ----------------------------------------------------------------- paths
    def stored_path(self, path: str | os.PathLike) -> str:
        """How a path is kept in the catalog: relative to the workspace folder when inside it
        (the workspace moves as a folder), else absolute."""
        resolved = Path(path).resolve()
        try:
            return resolved.relative_to(self.path.parent).as_posix()
        except ValueError:
            return str(resolved)

    def resolved_path(self, stored: str) -> Path:
        """A stored path as a usable one. Rows written before paths were workspace-relative hold
        paths relative to the directory glocal ran in: used when that is where the file is."""
        path = Path(stored)
        if path.is_absolute():
            return path
        inside = self.path.parent / path
        return inside if inside.exists() or not path.exists() else path.resolve()

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

    def _current_views(self, con) -> None:
        """Temporary views over this workspace's artifacts where it is now (a moved or copied
        workspace's stored views still point at its old place); read-only connections may."""
        stages = sorted(p.name for p in self.artifact_root.iterdir() if p.is_dir()) if self.artifact_root.is_dir() else []
        for stage in stages:
            if any((self.artifact_root / stage).glob("*/shard-*.parquet")):
                con.execute(f"CREATE OR REPLACE TEMP VIEW {stage}_artifacts AS {self._view_sql(stage)}")

    # ----------------------------------------------------------------- datasets
    def register_dataset(self, dataset: str, root: str, classnames: list[str], shards: int, shard_dir: str, images: list[tuple], bad: list[tuple],
                         class_subset: list[int] | None = None) -> None:
        """``images``: (image_id, shard, label, width, height, sha256 of the bytes). ``class_subset``:
        the labels that are scored (ImageNet-R/-A); logits outside it are ignored."""
        with self.connect() as con:
            con.execute("BEGIN")
            # the content (ids, labels, shard layout, image bytes' hashes) keys every artifact: a
            # re-ingest with other images, or other pixels under the same names, never reuses
            # the old features
            content = [classnames, sorted(images)] + ([class_subset] if class_subset is not None else [])
            fingerprint = hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]
            con.execute("INSERT OR REPLACE INTO datasets (dataset, root, classnames, shards, shard_dir, fingerprint, class_subset) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [dataset, root, json.dumps(classnames), shards, self.stored_path(shard_dir), fingerprint,
                         json.dumps(class_subset) if class_subset is not None else None])
            con.execute("DELETE FROM images WHERE dataset = ?", [dataset])
            insert_rows(con, "images", ("dataset", "image_id", "shard", "label", "width", "height", "sha256"), [(dataset, *row) for row in images])
            con.execute("DELETE FROM bad_images WHERE dataset = ?", [dataset])
            insert_rows(con, "bad_images", ("dataset", "image_id", "reason"), [(dataset, *row) for row in bad])
            con.execute("COMMIT")

    def dataset(self, dataset: str) -> dict:
        with self.connect() as con:
            row = con.execute("SELECT root, classnames, shards, shard_dir, fingerprint, class_subset, listing FROM datasets WHERE dataset = ?",
                              [dataset]).fetchone()
        if row is None:
            raise ValueError(f"dataset {dataset!r} is not ingested; run `glocal ingest {dataset} <folder>` first")
        return {"root": row[0], "classnames": json.loads(row[1]), "shards": row[2], "shard_dir": str(self.resolved_path(row[3])), "fingerprint": row[4] or "",
                "class_subset": json.loads(row[5]) if row[5] else None, "listing": row[6]}

    def record_listing(self, dataset: str, listing: str) -> None:
        """The source's ``glocal.data.listing_signature`` as ingested (a re-ingest clears it)."""
        with self.connect() as con:
            con.execute("UPDATE datasets SET listing = ? WHERE dataset = ?", [listing, dataset])

    def shard_sizes(self, dataset: str) -> dict[int, int]:
        """shard -> number of images (what a stage's progress counts)."""
        with self.connect() as con:
            return dict(con.execute("SELECT shard, count(*) FROM images WHERE dataset = ? GROUP BY shard", [dataset]).fetchall())

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
    def start_run(self, run_id: str, dataset: str, backbone: str, attention: str, methods: list[str], configs: dict, text_key: str,
                  description_set: str | None = None, params: dict | None = None, encode_key: str | None = None) -> None:
        """``params``: the evaluate arguments that reproduce this run (the describe flow re-scores
        a run by calling evaluate again with them and a new description set)."""
        with self.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO runs (run_id, dataset, backbone, attention, methods, configs, text_key, status, description_set, params, encode_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                [run_id, dataset, backbone, attention, json.dumps(methods), json.dumps(configs), text_key, description_set,
                 json.dumps(params or {}), encode_key],
            )

    def runs_using(self, description_set: str) -> list[dict]:
        with self.connect() as con:
            rows = con.execute("SELECT run_id, params, encode_key FROM runs WHERE description_set = ? AND status = 'done' ORDER BY created_at",
                               [description_set]).fetchall()
        return [{"run_id": run_id, "params": json.loads(params or "{}"), "encode_key": key} for run_id, params, key in rows]

    def description_sets_used(self, dataset: str) -> list[str]:
        """Every description set a finished run on ``dataset`` used, oldest first."""
        with self.connect() as con:
            rows = con.execute("SELECT description_set FROM runs WHERE dataset = ? AND description_set IS NOT NULL AND status = 'done'"
                               " GROUP BY description_set ORDER BY min(created_at)", [dataset]).fetchall()
        return [r[0] for r in rows]

    def store_predictions(self, run_id: str, paths: list[Path], methods: list[str]) -> list[tuple]:
        """Replace a run's predictions with the rows of its per-shard prediction files (one bulk
        insert in DuckDB, nothing through Python), compute its accuracy from them in SQL and mark
        it done, in one transaction (idempotent on rerun). -> accuracy rows in ``methods`` order."""
        with self.connect() as con:
            con.execute("BEGIN")
            con.execute("DELETE FROM predictions WHERE run_id = ?", [run_id])
            con.execute("DELETE FROM accuracy WHERE run_id = ?", [run_id])
            con.execute("DELETE FROM draw_accuracy WHERE run_id = ?", [run_id])
            if paths:
                # union_by_name: prediction files written before draw_predictions existed read it as null
                con.execute("INSERT INTO predictions BY NAME SELECT run_id, method, preset_hash, image_id, label, prediction, correct, top5,"
                            " top5_scores, draw_predictions FROM read_parquet(?, union_by_name = true)", [[str(p) for p in paths]])
            con.execute("INSERT INTO draw_accuracy SELECT run_id, method, draw, count(*), avg((drawn = label)::INT) FROM"
                        " (SELECT run_id, method, label, unnest(draw_predictions) AS drawn, generate_subscripts(draw_predictions, 1) - 1 AS draw"
                        "  FROM predictions WHERE run_id = ? AND draw_predictions IS NOT NULL) GROUP BY run_id, method, draw", [run_id])
            # a method with draws: top-1 is the mean over its draws, top1_std their (population) std, as the official code prints
            con.execute("INSERT INTO accuracy (run_id, method, preset_hash, images, top1, draws, top1_std)"
                        " SELECT p.run_id, p.method, any_value(p.preset_hash), count(*), coalesce(any_value(d.mean), avg(p.correct::INT)),"
                        " coalesce(any_value(d.n), 1), any_value(d.std)"
                        " FROM predictions p LEFT JOIN (SELECT method, avg(top1) AS mean, stddev_pop(top1) AS std, count(*) AS n FROM draw_accuracy"
                        "  WHERE run_id = ? GROUP BY method) d ON p.method = d.method"
                        " WHERE p.run_id = ? GROUP BY p.run_id, p.method", [run_id, run_id])
            con.execute("UPDATE runs SET status = 'done' WHERE run_id = ?", [run_id])
            con.execute("COMMIT")
            rows = con.execute("SELECT run_id, method, preset_hash, images, top1 FROM accuracy WHERE run_id = ?", [run_id]).fetchall()
        order = {m: i for i, m in enumerate(methods)}
        return sorted(rows, key=lambda row: order.get(row[1], len(order)))

    # ----------------------------------------------------------------- description sets
    def open_description_set(self, dataset: str, llm_model: str, prompt_set: str, source: str, classes: int,
                             config: dict | None = None, new_version: bool = False) -> tuple[str, set[int]]:
        """The set to fill for (dataset, LLM model, prompt set): the latest version unless it is
        complete or ``new_version``; returns its id and the classes it already has."""
        with self.connect() as con:
            latest = con.execute("SELECT set_id, version, status FROM description_sets WHERE dataset = ? AND llm_model = ? AND prompt_set = ?"
                                 " ORDER BY version DESC LIMIT 1", [dataset, llm_model, prompt_set]).fetchone()
            if latest and not new_version:
                done = con.execute("SELECT class_index FROM description_classes WHERE set_id = ? AND status = 'ok'", [latest[0]]).fetchall()
                return latest[0], {r[0] for r in done}
            version = latest[1] + 1 if latest else 1
            set_id = f"{dataset}:{llm_model}:{prompt_set}:v{version}"
            con.execute("INSERT INTO description_sets (set_id, dataset, llm_model, prompt_set, version, source, status, classes, config, report)"
                        " VALUES (?, ?, ?, ?, ?, ?, 'generating', ?, ?, '{}')",
                        [set_id, dataset, llm_model, prompt_set, version, source, classes, json.dumps(config or {})])
        return set_id, set()

    def store_class_descriptions(self, set_id: str, class_index: int, classname: str, sentences: list[str],
                                 dropped: dict | None = None, attempts: int = 0, error: str | None = None) -> None:
        """One class's outcome and sentences, replacing any earlier attempt at that class."""
        dropped = dropped or {}
        with self.connect() as con:
            con.execute("BEGIN")
            con.execute("DELETE FROM descriptions WHERE set_id = ? AND class_index = ?", [set_id, class_index])
            con.execute("INSERT OR REPLACE INTO description_classes (set_id, class_index, classname, status, kept, dropped_empty, dropped_duplicate,"
                        " dropped_too_long, attempts, error, dropped_refusal, dropped_preamble) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [set_id, class_index, classname, "failed" if error else "ok", len(sentences), dropped.get("empty", 0),
                         dropped.get("duplicate", 0), dropped.get("too_long", 0), attempts, error, dropped.get("refusal", 0),
                         dropped.get("preamble", 0)])
            insert_rows(con, "descriptions", DESCRIPTION_COLUMNS, [(set_id, class_index, classname, slot, s) for slot, s in enumerate(sentences)])
            con.execute("COMMIT")

    def store_description_lists(self, set_id: str, classnames: list[str], lists: list[list[str]]) -> None:
        """A whole set at once (an imported file): one transaction, not one per class."""
        with self.connect() as con:
            con.execute("BEGIN")
            con.execute("DELETE FROM descriptions WHERE set_id = ?", [set_id])
            con.execute("DELETE FROM description_classes WHERE set_id = ?", [set_id])
            insert_rows(con, "description_classes", ("set_id", "class_index", "classname", "status", "kept", "dropped_empty", "dropped_duplicate",
                                                     "dropped_too_long", "attempts", "error"),
                        [(set_id, c, name, "ok" if sentences else "failed", len(sentences), 0, 0, 0, 0, None if sentences else "no sentences in the file")
                         for c, (name, sentences) in enumerate(zip(classnames, lists))])
            insert_rows(con, "descriptions", DESCRIPTION_COLUMNS,
                        [(set_id, c, classnames[c], slot, s) for c, sentences in enumerate(lists) for slot, s in enumerate(sentences)])
            con.execute("COMMIT")

    def finish_description_set(self, set_id: str) -> dict:
        """Mark the set complete (every class has sentences) or partial; store and return counts."""
        with self.connect() as con:
            classes = con.execute("SELECT classes FROM description_sets WHERE set_id = ?", [set_id]).fetchone()[0]
            ok, sentences, empty, duplicate, too_long, attempts, refusal, preamble = con.execute(
                "SELECT count(*) FILTER (WHERE status = 'ok'), coalesce(sum(kept), 0), coalesce(sum(dropped_empty), 0),"
                " coalesce(sum(dropped_duplicate), 0), coalesce(sum(dropped_too_long), 0), coalesce(sum(attempts), 0),"
                " coalesce(sum(dropped_refusal), 0), coalesce(sum(dropped_preamble), 0) FROM description_classes WHERE set_id = ?", [set_id]).fetchone()
            failed = dict(con.execute("SELECT classname, error FROM description_classes WHERE set_id = ? AND status = 'failed' ORDER BY class_index",
                                      [set_id]).fetchall())
            report = {"classes": classes, "classes_ok": ok, "sentences": sentences, "attempts": attempts,
                      "dropped": {"empty": empty, "duplicate": duplicate, "too_long": too_long, "refusal": refusal, "preamble": preamble},
                      "failed": failed}
            status = "complete" if ok == classes else "partial"
            con.execute("UPDATE description_sets SET status = ?, report = ? WHERE set_id = ?", [status, json.dumps(report), set_id])
        return {"set_id": set_id, "status": status, **report}

    def description_set(self, set_id: str) -> dict:
        with self.connect() as con:
            row = con.execute("SELECT dataset, llm_model, prompt_set, version, source, status, classes, report FROM description_sets WHERE set_id = ?",
                              [set_id]).fetchone()
        if row is None:
            raise ValueError(f"no description set {set_id!r}; `glocal sql \"SELECT set_id FROM description_sets\"` lists them")
        keys = ("dataset", "llm_model", "prompt_set", "version", "source", "status", "classes")
        return {"set_id": set_id, **dict(zip(keys, row[:7])), "report": json.loads(row[7] or "{}")}

    def description_lists(self, set_id: str) -> list[list[str]]:
        """The set's sentences per class index (classes without sentences get an empty list)."""
        info = self.description_set(set_id)
        lists: list[list[str]] = [[] for _ in range(info["classes"])]
        with self.connect() as con:
            for c, sentence in con.execute("SELECT class_index, sentence FROM descriptions WHERE set_id = ? ORDER BY class_index, slot", [set_id]).fetchall():
                lists[c].append(sentence)
        return lists

    def accuracy(self, run_id: str | None = None) -> list[tuple]:
        sql = "SELECT a.run_id, r.dataset, r.backbone, a.method, a.images, a.top1 FROM accuracy a JOIN runs r USING (run_id)"
        args = []
        if run_id:
            sql += " WHERE a.run_id = ?"
            args.append(run_id)
        with self.connect(read_only=True) as con:
            return con.execute(sql + " ORDER BY r.created_at, a.run_id, a.method", args).fetchall()

    def run_results(self, run_id: str) -> list[dict]:
        """A run's accuracy per method: images, top-1 (a fraction; the mean over draws for a
        method with draws), its std over draws (None without) and the number of draws."""
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT method, images, top1, top1_std, coalesce(draws, 1) FROM accuracy WHERE run_id = ? ORDER BY method",
                               [run_id]).fetchall()
        return [dict(zip(("method", "images", "top1", "top1_std", "draws"), row)) for row in rows]

    def run_info(self, run_id: str) -> dict:
        with self.connect(read_only=True) as con:
            row = con.execute("SELECT run_id, dataset, backbone, attention, methods, encode_key, description_set FROM runs WHERE run_id = ?",
                              [run_id]).fetchone()
        if row is None:
            raise ValueError(f"no run {run_id!r}; `glocal runs` lists them")
        keys = ("run_id", "dataset", "backbone", "attention", "methods", "encode_key", "description_set")
        info = dict(zip(keys, row))
        info["methods"] = json.loads(info["methods"])
        return info

    def artifact_meta(self, stage: str, key: str) -> dict[int, dict]:
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT shard, meta FROM artifacts WHERE stage = ? AND key = ?", [stage, key]).fetchall()
        return {shard: json.loads(meta or "{}") for shard, meta in rows}

    def per_class_accuracy(self, run_id: str) -> list[tuple]:
        """(method, label, images, accuracy) for every class with at least one image."""
        with self.connect(read_only=True) as con:
            return con.execute("SELECT method, label, count(*), avg(correct::INT) FROM predictions WHERE run_id = ?"
                               " GROUP BY method, label ORDER BY method, label", [run_id]).fetchall()

    def predictions_of(self, run_id: str, image_ids: list[str]) -> dict[tuple[str, str], int]:
        """{(image_id, method): predicted label}."""
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT image_id, method, prediction FROM predictions WHERE run_id = ? AND list_contains(?, image_id)",
                               [run_id, image_ids]).fetchall()
        return {(i, m): p for i, m, p in rows}

    def resolve_scored(self, spec: str) -> tuple[str, str, str]:
        """'RUN:METHOD' or 'METHOD' (its latest scored run) -> (run_id, method, dataset)."""
        run_id, _, method = spec.rpartition(":")
        sql = "SELECT a.run_id, a.method, r.dataset FROM accuracy a JOIN runs r USING (run_id) WHERE a.method = ?"
        args = [method]
        if run_id:
            sql += " AND a.run_id = ?"
            args.append(run_id)
        with self.connect(read_only=True) as con:
            row = con.execute(sql + " ORDER BY r.created_at DESC LIMIT 1", args).fetchone()
        if row is None:
            raise ValueError(f"no scored run for {spec!r}; `glocal runs` lists run ids and methods (use RUN:METHOD)")
        return row

    def paired_correct(self, a: tuple[str, str], b: tuple[str, str]) -> tuple[list[str], list[bool], list[bool]]:
        """Per-image correctness of (run, method) a and b on the images both scored."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT pa.image_id, pa.correct, pb.correct FROM predictions pa JOIN predictions pb USING (image_id)"
                " WHERE pa.run_id = ? AND pa.method = ? AND pb.run_id = ? AND pb.method = ? ORDER BY pa.image_id",
                [a[0], a[1], b[0], b[1]]).fetchall()
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    # ----------------------------------------------------------------- sweeps
    def store_sweep(self, sweep_id: str, dataset: str, backbone: str, method: str, param: str, spec: dict, points: list[tuple]) -> None:
        """``points``: (position, role, method, value, run_id, encoded_shards); replaces a rerun's rows."""
        with self.connect() as con:
            con.execute("BEGIN")
            con.execute("INSERT OR REPLACE INTO sweeps (sweep_id, dataset, backbone, method, param, spec) VALUES (?, ?, ?, ?, ?, ?)",
                        [sweep_id, dataset, backbone, method, param, json.dumps(spec)])
            con.execute("DELETE FROM sweep_points WHERE sweep_id = ?", [sweep_id])
            insert_rows(con, "sweep_points", ("sweep_id", "position", "role", "method", "value", "run_id", "encoded_shards"),
                        [(sweep_id, pos, role, m, json.dumps(value), run_id, encoded) for pos, role, m, value, run_id, encoded in points])
            con.execute("COMMIT")

    def sweeps_within(self, run_ids: list[str]) -> list[dict]:
        """Sweeps whose every run is among ``run_ids``, each with its points and their accuracy."""
        with self.connect(read_only=True) as con:
            sweeps = con.execute("SELECT sweep_id, dataset, backbone, method, param FROM sweeps ORDER BY created_at").fetchall()
            out = []
            for sweep_id, dataset, backbone, method, param in sweeps:
                points = con.execute(
                    "SELECT p.position, p.role, p.method, p.value, p.run_id, p.encoded_shards, a.top1 FROM sweep_points p"
                    " LEFT JOIN accuracy a ON a.run_id = p.run_id AND a.method = p.method WHERE p.sweep_id = ? ORDER BY p.position",
                    [sweep_id]).fetchall()
                if points and all(p[4] in run_ids for p in points):
                    out.append({"sweep_id": sweep_id, "dataset": dataset, "backbone": backbone, "method": method, "param": param,
                                "points": [dict(zip(("position", "role", "method", "value", "run_id", "encoded_shards", "top1"), p[:3] + (json.loads(p[3]),) + p[4:]))
                                           for p in points]})
        return out

    def sweep_runs(self, sweep_id: str) -> list[str]:
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT run_id, min(position) FROM sweep_points WHERE sweep_id = ? GROUP BY run_id ORDER BY 2", [sweep_id]).fetchall()
        if not rows:
            raise ValueError(f"no sweep {sweep_id!r}; `glocal sql \"SELECT * FROM sweeps\"` lists them")
        return [r[0] for r in rows]

    def store_reproduction(self, repro_id: str, table: str, spec: dict, notes: list[str], cells: list[tuple]) -> None:
        """``cells``: (dataset, backbone label, method, run_id, published % or None, form); replaces a rerun's rows."""
        with self.connect() as con:
            con.execute("BEGIN")
            con.execute("INSERT OR REPLACE INTO reproductions (repro_id, table_id, spec, notes) VALUES (?, ?, ?, ?)",
                        [repro_id, table, json.dumps(spec), json.dumps(notes)])
            con.execute("DELETE FROM reproduction_cells WHERE repro_id = ?", [repro_id])
            insert_rows(con, "reproduction_cells", ("repro_id", "dataset", "backbone", "method", "run_id", "published", "form"),
                        [(repro_id, *c) for c in cells])
            con.execute("COMMIT")

    def reproduction(self, repro_id: str) -> dict:
        """A stored reproduction with each cell's measured top-1 (%) from ``accuracy`` beside the published one."""
        with self.connect(read_only=True) as con:
            head = con.execute("SELECT table_id, spec, notes FROM reproductions WHERE repro_id = ?", [repro_id]).fetchone()
            if head is None:
                raise ValueError(f"no reproduction {repro_id!r}; `glocal sql \"SELECT * FROM reproductions\"` lists them")
            rows = con.execute(
                "SELECT c.dataset, c.backbone, c.method, c.run_id, a.images, 100 * a.top1, 100 * a.top1_std, c.published, c.form"
                " FROM reproduction_cells c"
                " LEFT JOIN accuracy a ON a.run_id = c.run_id AND a.method = c.method WHERE c.repro_id = ?"
                " ORDER BY c.backbone, c.dataset, c.method", [repro_id]).fetchall()
        spec = json.loads(head[1])
        keys = ("dataset", "backbone", "method", "run_id", "images", "measured", "measured_std", "published", "form")
        return {"repro_id": repro_id, "table": head[0], "source": spec.get("source", ""), "spec": spec, "notes": json.loads(head[2]),
                "cells": [dict(zip(keys, r)) for r in rows]}

    def reproductions_within(self, run_ids: list[str]) -> list[dict]:
        """Reproductions whose every run is among ``run_ids``."""
        with self.connect(read_only=True) as con:
            ids = [r[0] for r in con.execute("SELECT repro_id FROM reproductions ORDER BY created_at").fetchall()]
            runs = {r: {x[0] for x in con.execute("SELECT DISTINCT run_id FROM reproduction_cells WHERE repro_id = ?", [r]).fetchall()}
                    for r in ids}
        return [self.reproduction(r) for r in ids if runs[r] and runs[r] <= set(run_ids)]

    def reproduction_runs(self, repro_id: str) -> list[str]:
        return list(dict.fromkeys(c["run_id"] for c in self.reproduction(repro_id)["cells"]))

    def run_configs(self, run_id: str) -> dict[str, dict]:
        with self.connect(read_only=True) as con:
            row = con.execute("SELECT configs FROM runs WHERE run_id = ?", [run_id]).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        """SQL for `glocal sql`, which cannot change anything: only SELECT statements (DuckDB's own
        parser decides; COPY ... TO, EXPORT, ATTACH, INSTALL/LOAD, SET, PRAGMA and the rest are
        refused), on a read-only connection that reads no file outside the workspace's artifacts
        and whose settings are locked."""
        with self.connect(read_only=True) as con:
            refused = sorted({str(s.type).rsplit(".", 1)[-1] for s in con.extract_statements(sql)} - {"SELECT"})
            if refused:
                raise ValueError(f"glocal sql is read-only: it runs SELECT queries only; refused: {', '.join(refused)}")
            self._current_views(con)
            con.execute("SET allowed_directories = ?", [[str(self.artifact_root) + os.sep]])
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            result = con.execute(sql)
            columns = [d[0] for d in result.description] if result.description else []
            return columns, result.fetchall()
