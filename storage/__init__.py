"""The DuckDB catalog and Parquet artifact IO: the only code that touches the database."""

from storage.artifacts import read_artifact, write_parquet_atomic
from storage.catalog import Catalog

__all__ = ["Catalog", "read_artifact", "write_parquet_atomic"]
