"""The workspace catalog: every store of the workspace's DuckDB file in one object.

Each concern is its own module: the connection and paths (``storage.workspace``), artifacts
(``artifact_index``), datasets and manifests (``datasets``), runs and predictions (``runs``),
description sets (``descriptions``), sweeps and reproductions (``studies``). The schema and its
migrations are in ``storage.schema`` and run once per database file per process.
"""

from __future__ import annotations

from storage.artifact_index import ArtifactIndex
from storage.datasets import DatasetStore
from storage.descriptions import DescriptionStore
from storage.runs import RunStore
from storage.studies import StudyStore
from storage.workspace import WorkspaceBusy, insert_rows


class Catalog(ArtifactIndex, DatasetStore, RunStore, DescriptionStore, StudyStore):
    """One workspace: ``Catalog(path)`` (default $GLOCAL_DB or ./glocal.duckdb), or
    ``Catalog.read_only(path)`` for queries that never write."""


__all__ = ["Catalog", "WorkspaceBusy", "insert_rows"]
