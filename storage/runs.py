"""Runs and their scores: a run's methods, configs and inputs, its predictions and accuracy."""

from __future__ import annotations

import json
from pathlib import Path

from storage.workspace import Workspace


class RunStore(Workspace):
    """Runs, predictions (loaded from Parquet in bulk) and accuracy (computed in SQL)."""

    def start_run(self, run_id: str, dataset: str, backbone: str, attention: str, methods: list[str], configs: dict, text_key: str,
                  description_set: str | None = None, params: dict | None = None, encode_key: str | None = None,
                  fingerprint: str | None = None, model_identity: str | None = None) -> None:
        """``params``: the evaluate arguments that reproduce this run (the describe flow re-scores
        a run by calling evaluate again with them and a new description set). ``fingerprint``: the
        dataset content scored (``glocal report`` draws images only while it is current).
        ``model_identity``: the backbone's weights as keyed (``glocal.backbones.identity``)."""
        with self.connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO runs (run_id, dataset, backbone, attention, methods, configs, text_key, status, description_set, params,"
                " encode_key, fingerprint, model_identity) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                [run_id, dataset, backbone, attention, json.dumps(methods), json.dumps(configs), text_key, description_set,
                 json.dumps(params or {}), encode_key, fingerprint, model_identity],
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

    def store_predictions(self, run_id: str, paths: list[Path], methods: list[str], expected_rows: int | None = None) -> list[tuple]:
        """Replace a run's predictions with the rows of its per-shard prediction files (one bulk
        insert in DuckDB, nothing through Python), compute its accuracy from them in SQL and mark
        it done, in one transaction (idempotent on rerun). Only rows of ``run_id`` are taken, and
        their count must be ``expected_rows`` (the rows registered with the files), else nothing
        changes. -> accuracy rows in ``methods`` order."""
        with self.connect() as con:
            con.execute("BEGIN")
            con.execute("DELETE FROM predictions WHERE run_id = ?", [run_id])
            con.execute("DELETE FROM accuracy WHERE run_id = ?", [run_id])
            con.execute("DELETE FROM draw_accuracy WHERE run_id = ?", [run_id])
            if paths:
                # union_by_name: prediction files written before draw_predictions existed read it as null
                con.execute("INSERT INTO predictions BY NAME SELECT run_id, method, preset_hash, image_id, label, prediction, correct, top5,"
                            " top5_scores, draw_predictions FROM read_parquet(?, union_by_name = true) WHERE run_id = ?",
                            [[str(p) for p in paths], run_id])
            loaded = con.execute("SELECT count(*), count(*) FILTER (WHERE correct IS NULL OR prediction IS NULL) FROM predictions WHERE run_id = ?",
                                 [run_id]).fetchone()
            if expected_rows is not None and (loaded[0] != expected_rows or loaded[1]):
                con.execute("ROLLBACK")
                raise RuntimeError(f"run {run_id}: its score files hold {loaded[0]} prediction rows of this run ({loaded[1]} incomplete), "
                                   f"{expected_rows} were registered; nothing was stored: rerun the same command to recompute them")
            # top-1 in per cent, as every table glocal prints names it (top1_pct)
            con.execute("INSERT INTO draw_accuracy (run_id, method, draw, images, top1_pct) SELECT run_id, method, draw, count(*), 100 * avg((drawn = label)::INT) FROM"
                        " (SELECT run_id, method, label, unnest(draw_predictions) AS drawn, generate_subscripts(draw_predictions, 1) - 1 AS draw"
                        "  FROM predictions WHERE run_id = ? AND draw_predictions IS NOT NULL) GROUP BY run_id, method, draw", [run_id])
            # a method with draws: top-1 is the mean over its draws, top1_std their (population) std, as the official code prints
            con.execute("INSERT INTO accuracy (run_id, method, preset_hash, images, top1_pct, draws, top1_std_pct)"
                        " SELECT p.run_id, p.method, any_value(p.preset_hash), count(*), coalesce(any_value(d.mean), 100 * avg(p.correct::INT)),"
                        " coalesce(any_value(d.n), 1), any_value(d.std)"
                        " FROM predictions p LEFT JOIN (SELECT method, avg(top1_pct) AS mean, stddev_pop(top1_pct) AS std, count(*) AS n FROM draw_accuracy"
                        "  WHERE run_id = ? GROUP BY method) d ON p.method = d.method"
                        " WHERE p.run_id = ? GROUP BY p.run_id, p.method", [run_id, run_id])
            self._more_metrics(con, run_id)
            con.execute("UPDATE runs SET status = 'done' WHERE run_id = ?", [run_id])
            con.execute("COMMIT")
            rows = con.execute("SELECT run_id, method, preset_hash, images, top1_pct / 100 FROM accuracy WHERE run_id = ?", [run_id]).fetchall()
        order = {m: i for i, m in enumerate(methods)}
        return sorted(rows, key=lambda row: order.get(row[1], len(order)))

    def run_params(self) -> dict[str, dict]:
        """run id -> the request fields it stored (``RunRequest.stored_params``)."""
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT run_id, params FROM runs").fetchall()
        return {run_id: json.loads(params) if params else {} for run_id, params in rows}

    @staticmethod
    def _more_metrics(con, run_id: str) -> None:
        """Top-5 and mean per-class recall (CLIP_benchmark's acc5 and mean_per_class_recall, the
        main metric of Pets, Caltech-101, Aircraft and Flowers), in per cent, beside top-1; for a
        method with draws, the mean per-class recall is the mean over its draws, as top-1 is."""
        con.execute("UPDATE draw_accuracy d SET mean_per_class_recall_pct = s.recall FROM ("
                    " SELECT method, draw, 100 * avg(recall) AS recall FROM ("
                    "  SELECT method, draw, label, avg((drawn = label)::INT) AS recall FROM ("
                    "   SELECT method, label, unnest(draw_predictions) AS drawn, generate_subscripts(draw_predictions, 1) - 1 AS draw"
                    "   FROM predictions WHERE run_id = ? AND draw_predictions IS NOT NULL) GROUP BY method, draw, label)"
                    " GROUP BY method, draw) s WHERE d.run_id = ? AND d.method = s.method AND d.draw = s.draw", [run_id, run_id])
        con.execute("UPDATE accuracy a SET top5_pct = s.top5, mean_per_class_recall_pct = coalesce(s.drawn_recall, s.recall) FROM ("
                    " SELECT p.method, any_value(p.top5) AS top5, any_value(p.recall) AS recall, any_value(d.recall) AS drawn_recall FROM ("
                    "  SELECT method, 100 * sum(hits) / sum(n) AS top5, 100 * avg(correct) AS recall FROM ("
                    "   SELECT method, label, count(*) AS n, sum(list_contains(top5, label)::INT) AS hits, avg(correct::INT) AS correct"
                    "   FROM predictions WHERE run_id = ? GROUP BY method, label) GROUP BY method) p"
                    "  LEFT JOIN (SELECT method, avg(mean_per_class_recall_pct) AS recall FROM draw_accuracy WHERE run_id = ? GROUP BY method) d"
                    "  ON p.method = d.method GROUP BY p.method) s WHERE a.run_id = ? AND a.method = s.method", [run_id, run_id, run_id])

    def metrics(self, run_id: str | None = None) -> dict[tuple[str, str], tuple]:
        """{(run_id, method): (top5_pct, mean_per_class_recall_pct)}; None for runs stored before these existed."""
        sql = "SELECT run_id, method, top5_pct, mean_per_class_recall_pct FROM accuracy"
        with self.connect(read_only=True) as con:
            rows = con.execute(sql + (" WHERE run_id = ?" if run_id else ""), [run_id] if run_id else []).fetchall()
        return {(r, m): (t5, recall) for r, m, t5, recall in rows}

    def accuracy(self, run_id: str | None = None) -> list[tuple]:
        # (code works in fractions; the tables hold per cent)
        sql = "SELECT a.run_id, r.dataset, r.backbone, a.method, a.images, a.top1_pct / 100 FROM accuracy a JOIN runs r USING (run_id)"
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
            rows = con.execute("SELECT method, images, top1_pct / 100, top1_std_pct / 100, coalesce(draws, 1), top5_pct, mean_per_class_recall_pct"
                               " FROM accuracy WHERE run_id = ? ORDER BY method", [run_id]).fetchall()
        return [dict(zip(("method", "images", "top1", "top1_std", "draws", "top5_pct", "mean_per_class_recall_pct"), row)) for row in rows]

    def store_costs(self, run_id: str, costs: dict[str, dict]) -> None:
        """method -> ``glocal.encode.cost.method_cost``'s record, for this run (replacing any)."""
        from storage.workspace import insert_rows

        rows = [(run_id, method, json.dumps(c["forwards"]), c["window_blocks"], c["attention_forwards"], c["gflop_per_image"])
                for method, c in costs.items()]
        with self.connect() as con:
            con.execute("DELETE FROM method_cost WHERE run_id = ?", [run_id])
            insert_rows(con, "method_cost", ("run_id", "method", "forwards", "window_blocks", "attention_forwards", "gflop_per_image"), rows)

    def store_stage_times(self, run_id: str, rows: list[dict]) -> None:
        """The run's stage records (``flows.stage_clock``), replacing any earlier ones of this run id."""
        from storage.workspace import insert_rows

        columns = ("run_id", "stage", "status", "units_computed", "units_total", "seconds", "images_per_s", "device", "peak_rss_mb", "precision")
        with self.connect() as con:
            con.execute("DELETE FROM stage_time WHERE run_id = ?", [run_id])
            insert_rows(con, "stage_time", columns, [(run_id, *(row[c] for c in columns[1:])) for row in rows])

    def costs(self) -> dict[tuple[str, str], dict]:
        """{(run_id, method): {"forwards", "window_blocks", "attention_forwards", "gflop_per_image"}}."""
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT run_id, method, forwards, window_blocks, attention_forwards, gflop_per_image FROM method_cost").fetchall()
        return {(r, m): {"forwards": json.loads(f), "window_blocks": w, "attention_forwards": a, "gflop_per_image": g}
                for r, m, f, w, a, g in rows}

    def result_rows(self, run_ids: list[str] | None = None) -> list[dict]:
        """Every finished (run, method) with what a results file names: dataset, backbone, the
        weights' identity, the run's params and the metrics (per cent); ``run_ids`` restricts them."""
        sql = ("SELECT a.run_id, r.dataset, r.backbone, r.model_identity, r.params, a.method, a.images, a.top1_pct, a.top1_std_pct,"
               " a.top5_pct, a.mean_per_class_recall_pct FROM accuracy a JOIN runs r USING (run_id)")
        args: list = []
        if run_ids is not None:
            sql += " WHERE a.run_id IN (SELECT unnest(?))"
            args.append(list(run_ids))
        with self.connect(read_only=True) as con:
            rows = con.execute(sql + " ORDER BY r.dataset, r.created_at, a.method", args).fetchall()
        keys = ("run_id", "dataset", "backbone", "model_identity", "params", "method", "images", "top1_pct", "top1_std_pct", "top5_pct",
                "mean_per_class_recall_pct")
        return [{**dict(zip(keys, row)), "params": json.loads(row[4] or "{}")} for row in rows]

    def run_info(self, run_id: str) -> dict:
        row = self.fetch_one("SELECT run_id, dataset, backbone, attention, methods, encode_key, description_set, fingerprint FROM runs WHERE run_id = ?",
                             [run_id], f"no run {run_id!r}; `glocal runs` lists them", read_only=True)
        keys = ("run_id", "dataset", "backbone", "attention", "methods", "encode_key", "description_set", "fingerprint")
        info = dict(zip(keys, row))
        info["methods"] = json.loads(info["methods"])
        return info

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

    def latest_scored(self, method: str, dataset: str) -> str | None:
        """The latest run that scored ``method`` on ``dataset``, if any."""
        with self.connect(read_only=True) as con:
            row = con.execute("SELECT a.run_id FROM accuracy a JOIN runs r USING (run_id) WHERE a.method = ? AND r.dataset = ?"
                              " ORDER BY r.created_at DESC LIMIT 1", [method, dataset]).fetchone()
        return row[0] if row else None

    def paired_correct(self, a: tuple[str, str], b: tuple[str, str]) -> tuple[list[str], list[bool], list[bool]]:
        """Per-image correctness of (run, method) a and b on the images both scored."""
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT pa.image_id, pa.correct, pb.correct FROM predictions pa JOIN predictions pb USING (image_id)"
                " WHERE pa.run_id = ? AND pa.method = ? AND pb.run_id = ? AND pb.method = ? ORDER BY pa.image_id",
                [a[0], a[1], b[0], b[1]]).fetchall()
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    def run_configs(self, run_id: str) -> dict[str, dict]:
        with self.connect(read_only=True) as con:
            row = con.execute("SELECT configs FROM runs WHERE run_id = ?", [run_id]).fetchone()
        return json.loads(row[0]) if row and row[0] else {}
