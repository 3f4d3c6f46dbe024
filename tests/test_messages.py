"""Bad input is one line naming the problem and the remedy, exit 2, decided before Prefect (and
the model stack) is imported, so it comes in about a second."""

import contextlib
import io
import subprocess
import sys

import pytest

from servers import clean_env

CHECK = """
import sys
from app.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # a parse error
    code = exc.code
heavy = sorted(m for m in ("prefect", "transformers") if m in sys.modules)
print(code, ",".join(heavy) or "-")
"""


def glocal_fresh(args: list[str], cwd) -> tuple[int, str, str]:
    """`glocal ARGS` in a fresh interpreter: (exit code, the heavy packages it imported, stderr)."""
    done = subprocess.run([sys.executable, "-c", CHECK, *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env=clean_env(HF_HUB_OFFLINE="1"))
    code, heavy = done.stdout.split()[-2:]
    return int(code), heavy, done.stderr


def run(argv: list[str]) -> tuple[int, str]:
    from app.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # a parse error
            code = exc.code
    return code, err.getvalue()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from glocal.data.demo_data import generate_images
    from tasks.ingest import ingest_folder

    root = tmp_path_factory.mktemp("messages")
    db = str(root / "ws.duckdb")
    ingest_folder(db, "shapes", str(generate_images(root / "shapes", per_class=1)), shard_size=3)
    return root, db


def test_a_bad_request_fails_before_prefect_or_transformers_is_imported(workspace, tiny_clip_dir):
    root, db = workspace
    cases = [(["evaluate", "shapes", "--model", str(tiny_clip_dir), "--methods", "nope", "--db", db], "unknown method"),
             (["evaluate", "missing", "--model", str(tiny_clip_dir), "--methods", "clip", "--db", db], "not ingested"),
             (["evaluate", "shapes", "--model", "/nope/clip", "--methods", "clip", "--db", db], "no such model directory"),
             (["evaluate", "shapes", "--model", str(tiny_clip_dir), "--methods", "clip", "--db", str(root)], "is a folder")]
    for args, problem in cases:
        code, heavy, stderr = glocal_fresh(args, root)
        assert code == 2 and heavy == "-", (args, code, heavy, stderr)
        assert problem in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_each_message_names_the_problem_and_the_remedy(workspace, monkeypatch):
    root, db = workspace
    # --db naming a folder: the file to name instead
    code, err = run(["runs", "--db", str(root)])
    assert code == 2 and f"e.g. {root / 'glocal.duckdb'}" in err and len(err.strip().splitlines()) == 1
    # a hub id while offline: said so, with what to do (not the message of a typo)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = run(["evaluate", "shapes", "--model", "openai/clip-vit-base-patch16", "--methods", "clip", "--db", db])
    assert code == 2 and "HF_HUB_OFFLINE is set" in err and "huggingface-cli download openai/clip-vit-base-patch16" in err
    # the hub unreachable (no network): not the message of a missing model
    from glocal.backbones import identity

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(identity, "_offline", lambda: False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    code, err = run(["evaluate", "shapes", "--model", "someone/some-clip", "--methods", "clip", "--db", db])
    assert code == 2 and "the hub could not be reached" in err, err


def test_compare_across_datasets_shows_the_run_method_form(workspace, tmp_path):
    from storage import Catalog
    from storage.workspace import insert_rows

    _, db = workspace
    catalog = Catalog(db)
    with catalog.connect() as con:
        con.execute("INSERT INTO runs (run_id, dataset, backbone, attention, methods, configs, text_key, status) VALUES "
                    "('r_shapes', 'shapes', 'b', 'a', '[]', '{}', 't', 'done'), ('r_other', 'other', 'b', 'a', '[]', '{}', 't', 'done')")
        insert_rows(con, "accuracy", ("run_id", "method", "preset_hash", "images", "top1_pct"),
                    [("r_shapes", "clip", "h", 3, 50.0), ("r_shapes", "abs", "h", 3, 50.0), ("r_other", "abs", "h", 3, 25.0)])
    code, err = run(["compare", "r_other:abs", "clip", "--db", db])
    assert code == 2 and "run r_other on dataset 'other'" in err and "`glocal compare RUN_A:abs RUN_B:clip`" in err, err
    assert len(err.strip().splitlines()) == 1
    code, err = run(["compare", "r_shapes:clip", "r_other:abs", "--db", db])  # a run of the second method on the first's dataset
    assert code == 2 and "`glocal compare r_shapes:clip r_shapes:abs`" in err, err
