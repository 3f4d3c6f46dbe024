"""Datasets: ingested image sets, their manifests (image, shard, label, size, bytes' hash) and bad images."""

from __future__ import annotations

import hashlib
import json

from glocal.data.names import check_name
from storage.workspace import Workspace, insert_rows


class DatasetStore(Workspace):
    """Ingested datasets and their manifests."""

    def register_dataset(self, dataset: str, root: str, classnames: list[str], shards: int, shard_dir: str, images: list[tuple], bad: list[tuple],
                         class_subset: list[int] | None = None, templates: list[str] | None = None) -> None:
        """``images``: (image_id, shard, label, width, height, sha256 of the bytes). ``class_subset``:
        the labels that are scored (ImageNet-R/-A); logits outside it are ignored. ``templates``: the
        prompt templates the folder carries (CLIP_benchmark's layout), used by runs that name none."""
        check_name(dataset)
        with self.connect() as con:
            con.execute("BEGIN")
            # the content (ids, labels, shard layout, image bytes' hashes) keys every artifact: a
            # re-ingest with other images, or other pixels under the same names, never reuses
            # the old features
            content = [classnames, sorted(images)] + ([class_subset] if class_subset is not None else [])
            fingerprint = hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]
            con.execute("INSERT OR REPLACE INTO datasets (dataset, root, classnames, shards, shard_dir, fingerprint, class_subset, templates) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [dataset, root, json.dumps(classnames), shards, self.stored_path(shard_dir), fingerprint,
                         json.dumps(class_subset) if class_subset is not None else None, json.dumps(templates) if templates else None])
            con.execute("DELETE FROM images WHERE dataset = ?", [dataset])
            insert_rows(con, "images", ("dataset", "image_id", "shard", "label", "width", "height", "sha256"), [(dataset, *row) for row in images])
            con.execute("DELETE FROM bad_images WHERE dataset = ?", [dataset])
            insert_rows(con, "bad_images", ("dataset", "image_id", "reason"), [(dataset, *row) for row in bad])
            con.execute("COMMIT")

    def dataset(self, dataset: str) -> dict:
        row = self.fetch_one("SELECT root, classnames, shards, shard_dir, fingerprint, class_subset, listing, templates FROM datasets WHERE dataset = ?",
                             [dataset], f"dataset {dataset!r} is not ingested; run `glocal ingest {dataset} <folder>` first")
        return {"root": row[0], "classnames": json.loads(row[1]), "shards": row[2], "shard_dir": str(self.resolved_path(row[3])), "fingerprint": row[4] or "",
                "class_subset": json.loads(row[5]) if row[5] else None, "listing": row[6], "templates": json.loads(row[7]) if row[7] else None}

    def record_listing(self, dataset: str, listing: str) -> None:
        """The source's ``glocal.data.images.listing_signature`` as ingested (a re-ingest clears it)."""
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
