"""Thin Prefect tasks, one module per stage. Each takes ids, paths and configs (never tensors or
models), calls the pure core, writes Parquet and registers it in the catalog."""
