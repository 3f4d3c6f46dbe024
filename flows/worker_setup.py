"""Dask worker set-up for glocal's shard tasks (``--preload flows.worker_setup``; glocal's local
clusters load it themselves).

A Dask server puts its scratch folder first on ``sys.path`` (for files a client uploads), and
every worker keeps its spill folder, named ``storage``, inside it. Under an editable install,
whose packages are found by a finder that Python asks only after ``sys.path``, that empty folder
is imported as glocal's ``storage`` package (a namespace package with nothing in it), and every
shard task then fails with ``cannot import name 'Catalog' from 'storage'``. This module takes
Dask's scratch folders off ``sys.path`` before any task runs; ``check_imports`` is what the flow
runs on every worker before it submits a shard, so a worker that still cannot import glocal's
stages fails the run at once, with the worker's own error, instead of leaving shards pending.
"""

from __future__ import annotations

import sys
from pathlib import Path

STAGE_MODULES = ("storage", "tasks.attention", "tasks.encode", "tasks.score")


def _is_scratch(entry: str) -> bool:
    path = Path(entry or ".")
    return any(part == "dask-scratch-space" or part.startswith("dask-worker-space") for part in path.parts) or \
        ((path / "storage").is_dir() and not (path / "storage" / "__init__.py").exists())


def clean_sys_path() -> list[str]:
    """Dask's scratch folders off ``sys.path``, and a ``storage`` namespace imported from one
    forgotten. -> the entries removed."""
    removed = [entry for entry in sys.path if entry and _is_scratch(entry)]
    sys.path[:] = [entry for entry in sys.path if entry not in removed]
    module = sys.modules.get("storage")
    if module is not None and getattr(module, "__file__", None) is None:
        del sys.modules["storage"]
    return removed


def check_imports() -> str | None:
    """On a worker: None when glocal's stage modules (and the plugins GLOCAL_PLUGINS names)
    import, else the error, as one line."""
    clean_sys_path()
    try:
        import importlib

        for name in STAGE_MODULES:
            importlib.import_module(name)
        from storage import Catalog  # noqa: F401 -- the name a shadowed package lacks

        from glocal.plugins import load_plugins

        load_plugins()
    except Exception as exc:  # noqa: BLE001 -- reported to the flow, which stops the run
        return f"{type(exc).__name__}: {exc}"
    return None


def dask_setup(worker=None) -> None:  # Dask's preload hook
    clean_sys_path()
