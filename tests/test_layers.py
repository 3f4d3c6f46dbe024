"""The import layers hold (pyproject.toml's import-linter contracts): the core package imports no
storage, tasks, flows or app; storage no tasks; tasks no flows; flows no app; no stage module
imports another; the crop kinds, the engine and the reference extractor import no method, and the
engine not the reference extractor; the production flows and stages not the demo's helpers."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "7 kept, 0 broken" in done.stdout


def test_the_registry_imports_no_method_module():
    """The former registry <-> methods loop: methods register into glocal.methods.registry; lookups live in
    glocal.methods, which imports every method module first. No import chain leads back."""
    import grimp

    graph = grimp.build_graph("glocal")
    methods = [m for m in graph.find_children("glocal.methods") if m not in ("glocal.methods.registry", "glocal.methods.budget")]
    assert len(methods) >= 8
    for module in ["glocal.methods", *methods]:  # the lookups and every method module
        assert not graph.chain_exists(importer="glocal.methods.registry", imported=module), module
    assert graph.chain_exists(importer="glocal.methods.abs", imported="glocal.methods.registry")


def test_the_crop_kind_registry_imports_no_kind_module():
    """The same shape for crop kinds: built-in kinds register into glocal.kinds.registry; lookups live
    in glocal.kinds, which imports every kind module first."""
    import grimp

    graph = grimp.build_graph("glocal")
    kinds = [m for m in graph.find_children("glocal.kinds") if m not in ("glocal.kinds.registry", "glocal.kinds.features")]
    assert len(kinds) >= 3
    for module in ["glocal.kinds", *kinds]:  # the lookups and every kind module
        assert not graph.chain_exists(importer="glocal.kinds.registry", imported=module), module
    assert graph.chain_exists(importer="glocal.kinds.lgca", imported="glocal.kinds.registry")
