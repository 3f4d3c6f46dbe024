"""Plugins named by the environment: ``GLOCAL_PLUGINS=my_kinds,my_methods`` imports those modules
(importable from ``sys.path``, e.g. through PYTHONPATH) wherever glocal looks methods up, so a
module that registers a crop kind, a text kind or a method works from the command line, in the
flow's process and in every Dask worker (they inherit the environment) alike."""

from __future__ import annotations

import importlib
import os


def load_plugins() -> list[str]:
    """Import every module $GLOCAL_PLUGINS names (comma-separated), once; -> their names."""
    names = [name.strip() for name in os.environ.get("GLOCAL_PLUGINS", "").split(",") if name.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            raise ModuleNotFoundError(f"GLOCAL_PLUGINS names {name!r}, which is not importable here; "
                                      "put its folder on PYTHONPATH or install it", name=name) from None
    return names
