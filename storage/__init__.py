"""The DuckDB catalog and Parquet artifact IO: the only code that touches the database."""

from storage.artifacts import fixed_lists, read_artifact, read_vectors, unfixed, write_parquet_atomic
from storage.catalog import Catalog, WorkspaceBusy

__all__ = ["Catalog", "WorkspaceBusy", "fixed_lists", "read_artifact", "read_vectors", "unfixed", "write_parquet_atomic"]
