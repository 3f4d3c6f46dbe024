"""The workspace's tables, and the changes made to them since the first release.

A database records the schema version it is at (table ``glocal_schema``); ``migrate`` brings an
older one up to date once, and is a single read for a current one.
"""

from __future__ import annotations

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
CREATE TABLE IF NOT EXISTS description_sets (
    set_id VARCHAR PRIMARY KEY, dataset VARCHAR, llm_model VARCHAR, prompt_set VARCHAR, version INTEGER,
    source VARCHAR, status VARCHAR, classes INTEGER, config JSON, report JSON,
    created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS description_classes (
    set_id VARCHAR, class_index INTEGER, classname VARCHAR, status VARCHAR, kept INTEGER,
    dropped_empty INTEGER, dropped_duplicate INTEGER, dropped_too_long INTEGER, attempts INTEGER,
    error VARCHAR, PRIMARY KEY (set_id, class_index));
CREATE TABLE IF NOT EXISTS descriptions (
    set_id VARCHAR, class_index INTEGER, classname VARCHAR, slot INTEGER, sentence VARCHAR,
    PRIMARY KEY (set_id, class_index, slot));
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id VARCHAR PRIMARY KEY, dataset VARCHAR, backbone VARCHAR, method VARCHAR, param VARCHAR, spec JSON,
    created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS sweep_points (
    sweep_id VARCHAR, position INTEGER, role VARCHAR, method VARCHAR, value JSON, run_id VARCHAR,
    encoded_shards INTEGER, PRIMARY KEY (sweep_id, position));
CREATE TABLE IF NOT EXISTS reproductions (
    repro_id VARCHAR PRIMARY KEY, table_id VARCHAR, spec JSON, notes JSON,
    created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS reproduction_cells (
    repro_id VARCHAR, dataset VARCHAR, backbone VARCHAR, method VARCHAR, run_id VARCHAR, published DOUBLE,
    PRIMARY KEY (repro_id, dataset, backbone, method));
CREATE TABLE IF NOT EXISTS draw_accuracy (
    run_id VARCHAR, method VARCHAR, draw INTEGER, images INTEGER, top1 DOUBLE,
    PRIMARY KEY (run_id, method, draw));
CREATE TABLE IF NOT EXISTS accuracy (
    run_id VARCHAR, method VARCHAR, preset_hash VARCHAR, images INTEGER, top1 DOUBLE,
    PRIMARY KEY (run_id, method));
"""

# columns added after the first release, in order: older workspaces gain them in place
MIGRATIONS = (
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS description_set VARCHAR",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS params JSON",
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS encode_key VARCHAR",
    "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS fingerprint VARCHAR",
    "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS class_subset JSON",
    "ALTER TABLE images ADD COLUMN IF NOT EXISTS sha256 VARCHAR",
    "ALTER TABLE description_classes ADD COLUMN IF NOT EXISTS dropped_refusal INTEGER DEFAULT 0",
    "ALTER TABLE description_classes ADD COLUMN IF NOT EXISTS dropped_preamble INTEGER DEFAULT 0",
    "ALTER TABLE predictions ADD COLUMN IF NOT EXISTS draw_predictions INTEGER[]",
    "ALTER TABLE accuracy ADD COLUMN IF NOT EXISTS draws INTEGER DEFAULT 1",
    "ALTER TABLE accuracy ADD COLUMN IF NOT EXISTS top1_std DOUBLE",
    "ALTER TABLE reproduction_cells ADD COLUMN IF NOT EXISTS form VARCHAR",
    "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS listing VARCHAR",
    # each artifact's size, sha256 and the modification time it had when last checked
    "ALTER TABLE artifacts ADD COLUMN IF NOT EXISTS bytes BIGINT",
    "ALTER TABLE artifacts ADD COLUMN IF NOT EXISTS sha256 VARCHAR",
    "ALTER TABLE artifacts ADD COLUMN IF NOT EXISTS checked_ns BIGINT",
    # the dataset content a run scored (the report draws only those pixels)
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS fingerprint VARCHAR",
    # top-1 in per cent, named with its unit, as in every table glocal prints or writes
    lambda con: percent_columns(con),
    # CLIP_benchmark's other metrics: acc5 and mean per-class recall (per draw too)
    "ALTER TABLE accuracy ADD COLUMN IF NOT EXISTS top5_pct DOUBLE",
    "ALTER TABLE accuracy ADD COLUMN IF NOT EXISTS mean_per_class_recall_pct DOUBLE",
    "ALTER TABLE draw_accuracy ADD COLUMN IF NOT EXISTS mean_per_class_recall_pct DOUBLE",
    # the prompt templates a dataset folder carries (CLIP_benchmark's zeroshot_classification_templates.txt)
    "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS templates JSON",
    # the weights a run used, as keyed (hub commit or directory content hash): CLIP_benchmark's "pretrained"
    "ALTER TABLE runs ADD COLUMN IF NOT EXISTS model_identity VARCHAR",
    # what each method's accuracy costs per image, counted (glocal.encode.cost)
    "CREATE TABLE IF NOT EXISTS method_cost (run_id VARCHAR, method VARCHAR, forwards JSON, window_blocks INTEGER, "
    "attention_forwards INTEGER, gflop_per_image DOUBLE, PRIMARY KEY (run_id, method))",
    # each stage's wall time, and whether its units were computed or reused (flows/stage_clock.py)
    "CREATE TABLE IF NOT EXISTS stage_time (run_id VARCHAR, stage VARCHAR, status VARCHAR, units_computed INTEGER, units_total INTEGER, "
    "seconds DOUBLE, images_per_s DOUBLE, device VARCHAR, peak_rss_mb DOUBLE, PRIMARY KEY (run_id, stage))",
    # the image encoders' arithmetic of the encode stage (--precision)
    "ALTER TABLE stage_time ADD COLUMN IF NOT EXISTS precision VARCHAR",
)
SCHEMA_VERSION = 1 + len(MIGRATIONS)


def percent_columns(con) -> None:
    """accuracy.top1 / top1_std and draw_accuracy.top1 (fractions) -> top1_pct / top1_std_pct (per
    cent); a workspace already migrated is left as it is."""
    columns = {(t, c) for t, c in con.execute("SELECT table_name, column_name FROM information_schema.columns"
                                              " WHERE table_name IN ('accuracy', 'draw_accuracy')").fetchall()}
    for table, old, new in (("accuracy", "top1", "top1_pct"), ("accuracy", "top1_std", "top1_std_pct"), ("draw_accuracy", "top1", "top1_pct")):
        if (table, old) in columns and (table, new) in columns:  # migrated before; the old column re-added (empty) above
            con.execute(f"ALTER TABLE {table} DROP COLUMN {old}")
        elif (table, old) in columns:
            con.execute(f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}")
            con.execute(f"UPDATE {table} SET {new} = 100 * {new}")


def schema_version(con) -> int:
    try:
        row = con.execute("SELECT max(version) FROM glocal_schema").fetchone()
    except Exception:  # noqa: BLE001 -- no version table: a new database, or one from before versions
        return 0
    return row[0] or 0


def migrate(con) -> bool:
    """Create the tables and apply the migrations unless the database is at SCHEMA_VERSION;
    True when it changed anything."""
    if schema_version(con) == SCHEMA_VERSION:
        return False
    con.execute("BEGIN")
    con.execute(SCHEMA)
    for statement in MIGRATIONS:
        statement(con) if callable(statement) else con.execute(statement)
    con.execute("CREATE TABLE IF NOT EXISTS glocal_schema (version INTEGER)")
    con.execute("DELETE FROM glocal_schema")
    con.execute("INSERT INTO glocal_schema VALUES (?)", [SCHEMA_VERSION])
    con.execute("COMMIT")
    return True
