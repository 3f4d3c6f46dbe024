"""Studies over runs: parameter sweeps and reproductions of the paper's tables."""

from __future__ import annotations

import json

from storage.workspace import Workspace, insert_rows


class StudyStore(Workspace):
    """Sweeps (one parameter's values, each a run) and reproductions (a table's cells, each a run)."""

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
                    "SELECT p.position, p.role, p.method, p.value, p.run_id, p.encoded_shards, a.top1_pct / 100 FROM sweep_points p"
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
                "SELECT c.dataset, c.backbone, c.method, c.run_id, a.images, a.top1_pct, a.top1_std_pct, c.published, c.form"
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
