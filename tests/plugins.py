"""Test-only plugin modules (a crop kind or text kind with the method that uses it): imported for
one test, then every registration they made is taken back, so no other test sees them."""

import importlib
import sys
from contextlib import contextmanager


@contextmanager
def plugin(module_name: str):
    import glocal.methods  # noqa: F401  (every built-in method and kind registered before the snapshot)
    from glocal.kinds import CROP_KINDS
    from glocal.methods.registry import METHODS
    from glocal.text.kinds import TEXT_KINDS

    registries = (CROP_KINDS, METHODS, TEXT_KINDS)
    before = [set(r) for r in registries]
    module = importlib.import_module(module_name)
    try:
        yield module
    finally:
        for registry, names in zip(registries, before):
            for name in set(registry) - names:
                del registry[name]
        sys.modules.pop(module_name, None)


def evaluate_on_shapes(tmp_path, model_dir, methods: str) -> str:
    """Ingest the generated shapes (shards of 4) and run `glocal evaluate` with ``methods`` on
    them, as a user would; -> the workspace's path."""
    from app.cli import main
    from glocal.data.demo_data import generate_images
    from tasks.ingest import ingest_folder

    db = str(tmp_path / "w.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "shapes")), shard_size=4)
    assert main(["evaluate", "shapes", "--model", str(model_dir), "--methods", methods, "--db", db]) == 0
    return db


def plugin_fixture(module_name: str):
    """A pytest fixture yielding the plugin module ``module_name``, registered for one test."""
    import pytest

    @pytest.fixture
    def registered():
        with plugin(module_name) as module:
            yield module

    return registered
