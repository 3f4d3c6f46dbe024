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
    assert "6 kept, 0 broken" in done.stdout


def test_the_registry_imports_no_method_module():
    """The former registry <-> methods loop: methods register into glocal.registry; lookups live in
    glocal.methods, which imports every method module first. No import chain leads back."""
    import grimp

    graph = grimp.build_graph("glocal")
    assert not graph.chain_exists(importer="glocal.registry", imported="glocal.methods", as_packages=True)
    assert graph.chain_exists(importer="glocal.methods.abs", imported="glocal.registry")


def test_the_crop_kind_registry_imports_no_kind_module():
    """The same shape for crop kinds: built-in kinds register into glocal.crop_kinds; lookups live
    in glocal.kinds, which imports every kind module first."""
    import grimp

    graph = grimp.build_graph("glocal")
    assert not graph.chain_exists(importer="glocal.crop_kinds", imported="glocal.kinds", as_packages=True)
    assert graph.chain_exists(importer="glocal.kinds.lgca", imported="glocal.crop_kinds")
