"""A workspace never lies: a stored result is reused only when the inputs that made it are the
same (image bytes, model weights), whatever the names say."""

import shutil

import duckdb
import pytest
from processes import wait_for_marker

pytestmark = pytest.mark.usefixtures("prefect_server")

METHODS = ["clip", "wca"]


def shapes(root):
    from glocal.data.demo_data import generate_images

    return generate_images(root)


def ingest(db, folder):
    from tasks.ingest import ingest_folder

    return ingest_folder(str(db), "shapes", str(folder), shard_size=4)


def predictions(db):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT method, image_id, prediction, top5 FROM predictions ORDER BY method, image_id").fetchall()


def latest_predictions(db, run_id):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT method, image_id, prediction, top5 FROM predictions WHERE run_id = ? ORDER BY method, image_id",
                           [run_id]).fetchall()


def repaint(folder):
    """Other pixels under the same file names, labels and sizes (the old fingerprint's inputs):
    every image's colours inverted."""
    from PIL import Image, ImageOps

    for f in sorted(folder.rglob("*.png")):
        with Image.open(f) as im:
            ImageOps.invert(im.convert("RGB")).save(f)


def test_reingested_pixels_under_the_same_names_are_encoded_again(tmp_path, tiny_clip_dir):
    from runs import evaluate

    folder = shapes(tmp_path / "shapes")
    db = tmp_path / "w.duckdb"
    kwargs = dict(dataset="shapes", model=str(tiny_clip_dir), methods=METHODS, n_crops=2)
    ingest(db, folder)
    first = evaluate(db=str(db), **kwargs)
    assert first["encoded_shards"] == 3
    repaint(folder)
    ingest(db, folder)
    second = evaluate(db=str(db), **kwargs)
    assert second["encoded_shards"] == 3  # nothing reused: the old features are of other pixels
    fresh = tmp_path / "fresh.duckdb"
    ingest(fresh, folder)
    reference = evaluate(db=str(fresh), **kwargs)
    assert latest_predictions(db, second["run_id"]) == latest_predictions(fresh, reference["run_id"])
    assert latest_predictions(db, second["run_id"]) != latest_predictions(db, first["run_id"])


def test_a_model_directory_rebuilt_in_place_is_not_reused(tmp_path):
    from runs import evaluate
    from glocal.tiny import build_tiny_clip

    folder = shapes(tmp_path / "shapes")
    model = tmp_path / "models" / "clip"
    build_tiny_clip(model, seed=0)
    db = tmp_path / "w.duckdb"
    kwargs = dict(dataset="shapes", model=str(model), methods=METHODS, n_crops=2)
    ingest(db, folder)
    first = evaluate(db=str(db), **kwargs)
    shutil.rmtree(model)
    build_tiny_clip(model, seed=1)  # same path, other weights
    second = evaluate(db=str(db), **kwargs)
    assert second["encoded_shards"] == 3 and second["text_key"] != first["text_key"] and second["run_id"] != first["run_id"]
    fresh = tmp_path / "fresh.duckdb"
    ingest(fresh, folder)
    reference = evaluate(db=str(fresh), **kwargs)
    assert latest_predictions(db, second["run_id"]) == latest_predictions(fresh, reference["run_id"])
    # the same weights under another path are the same model: everything reused
    copy = tmp_path / "elsewhere" / "clip"
    shutil.copytree(model, copy)
    third = evaluate(db=str(db), **dict(kwargs, model=str(copy)))
    assert third["encoded_shards"] == 0 and third["text_key"] == second["text_key"]


@pytest.fixture
def small_workspace(tmp_path):
    """A catalog with one registered artifact (and so its view), and a second workspace beside it."""
    import pyarrow as pa

    from storage import Catalog, write_parquet_atomic

    (tmp_path / "ws").mkdir()
    catalog = Catalog(tmp_path / "ws" / "glocal.duckdb")
    path = write_parquet_atomic(pa.table({"image_id": ["a", "b"], "x": [1.0, 2.0]}), catalog.artifact_path("encode", "k", 0))
    catalog.register_artifact("encode", "k", 0, path, 2)
    other = Catalog(tmp_path / "other.duckdb")
    with other.connect() as con:
        con.execute("INSERT INTO accuracy (run_id, method, preset_hash, images, top1_pct) VALUES ('r', 'clip', 'h', 10, 50.0)")
    return catalog, path, other


@pytest.mark.parametrize("sql", [
    "COPY (SELECT 1 AS x) TO '{artifact}'",  # overwrite a live artifact
    "COPY (SELECT 1 AS x) TO '{other}'",  # destroy another workspace
    "ATTACH '{other}' AS o (READ_WRITE); DELETE FROM o.accuracy",  # empty another workspace
    "SELECT 1; COPY (SELECT 1) TO '{artifact}'",  # smuggled after a query
    "EXPORT DATABASE '{tmp}/export'",
    "INSTALL httpfs",
    "SET enable_external_access = true",
])
def test_sql_door_cannot_write(small_workspace, tmp_path, sql, capsys):
    from app.cli import main

    catalog, artifact, other = small_workspace
    before, other_before = artifact.read_bytes(), other.path.read_bytes()
    assert main(["sql", sql.format(artifact=artifact, other=other.path, tmp=tmp_path), "--db", str(catalog.path)]) == 2
    assert "read-only" in capsys.readouterr().err
    assert artifact.read_bytes() == before and other.path.read_bytes() == other_before
    with other.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM accuracy").fetchone()[0] == 1


def test_sql_door_reads_tables_and_views_but_no_outside_file(small_workspace, tmp_path, capsys):
    from app.cli import main

    catalog, _, _ = small_workspace
    assert main(["sql", "SELECT image_id, x FROM encode_artifacts ORDER BY image_id", "--db", str(catalog.path)]) == 0
    assert [l.split() for l in capsys.readouterr().out.splitlines()] == [["image_id", "x"], ["a", "1.0"], ["b", "2.0"]]
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    assert main(["sql", f"SELECT * FROM read_csv('{secret}')", "--db", str(catalog.path)]) == 2
    assert "Permission" in capsys.readouterr().err


HOLDS_THE_WORKSPACE = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
open(sys.argv[2], "w").write("held")
time.sleep(float(sys.argv[3]))
con.close()
"""


@pytest.mark.parametrize("hold,wait,ok", [(2.0, "30", True), (60.0, "1", False)])
def test_a_busy_workspace_is_waited_for_then_named(small_workspace, tmp_path, monkeypatch, capsys, hold, wait, ok):
    """A reader meeting a run's write lock waits (bounded) instead of dying on DuckDB's lock error."""
    import subprocess
    import sys

    from app.cli import main

    catalog, _, _ = small_workspace
    marker = tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", HOLDS_THE_WORKSPACE, str(catalog.path), str(marker), str(hold)])
    try:
        wait_for_marker(holder, marker, 60, "the holder taking the lock")
        monkeypatch.setenv("GLOCAL_LOCK_WAIT", wait)
        code = main(["sql", "SELECT count(*) FROM artifacts", "--db", str(catalog.path)])
        out = capsys.readouterr()
        if ok:
            assert code == 0 and out.out.splitlines()[1] == "1"
        else:
            assert code == 4 and f"workspace {catalog.path} is busy: another process (pid {holder.pid}) holds it" in out.err
    finally:
        holder.kill()
        holder.wait()


def test_a_workspace_works_from_any_directory_and_moves_as_a_folder(tmp_path, tiny_clip_dir, monkeypatch, capsys):
    """Made through a relative --db from one directory, used from another, then copied elsewhere
    as a folder: reruns reuse everything, SQL over the views works, nothing points at the old place."""
    from runs import evaluate
    from app.cli import main

    folder = shapes(tmp_path / "shapes")
    (tmp_path / "a" / "ws").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a")
    ingest("ws/glocal.duckdb", folder)
    kwargs = dict(dataset="shapes", model=str(tiny_clip_dir), methods=METHODS, n_crops=2)
    first = evaluate(db="ws/glocal.duckdb", **kwargs)
    first_predictions = latest_predictions("ws/glocal.duckdb", first["run_id"])
    monkeypatch.chdir(tmp_path)  # another directory
    assert evaluate(db="a/ws/glocal.duckdb", **kwargs)["encoded_shards"] == 0
    assert main(["sql", "SELECT count(DISTINCT image_id) FROM encode_artifacts", "--db", "a/ws/glocal.duckdb"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "12"
    shutil.copytree(tmp_path / "a" / "ws", tmp_path / "b" / "copy")
    shutil.rmtree(tmp_path / "a")  # the original is gone: the copy must not need it
    monkeypatch.chdir(tmp_path / "b")
    again = evaluate(db="copy/glocal.duckdb", **kwargs)
    assert again["encoded_shards"] == 0 and latest_predictions("copy/glocal.duckdb", again["run_id"]) == first_predictions
    assert main(["sql", "SELECT count(DISTINCT image_id) FROM encode_artifacts", "--db", "copy/glocal.duckdb"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "12"
    with duckdb.connect("copy/glocal.duckdb", read_only=True) as con:
        stored = [r[0] for r in con.execute("SELECT path FROM artifacts UNION ALL SELECT shard_dir FROM datasets").fetchall()]
    assert stored and all(not p.startswith("/") for p in stored), stored  # workspace-relative



KILLED_INGEST = """
import sys, threading
import tasks.ingest as ingest_mod

real, written = ingest_mod.write_shard, []

def write_then_hang(path, samples):
    real(path, samples)
    written.append(path)
    if len(written) == 2:
        open(sys.argv[1], "w").write("two new shards written")
        threading.Event().wait(600)  # the test SIGKILLs us here, before the manifest switch

ingest_mod.write_shard = write_then_hang
ingest_mod.ingest_folder(sys.argv[2], "shapes", sys.argv[3], shard_size=4)
"""


def live_pixels(db):
    """{image id: pixels} of every image in the dataset's live shards, per the catalog."""
    from glocal.data.shards import iter_shard
    from storage import Catalog
    from tasks.artifact_formats import shard_path

    info = Catalog(db).dataset("shapes")
    return {i: image.tobytes() for s in range(info["shards"]) for i, _, image in iter_shard(shard_path(info["shard_dir"], s))}


def test_a_killed_reingest_leaves_the_old_dataset_whole(tmp_path, tiny_clip_dir):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    from runs import evaluate

    folder = shapes(tmp_path / "shapes")
    db = tmp_path / "w.duckdb"
    ingest(db, folder)
    kwargs = dict(dataset="shapes", model=str(tiny_clip_dir), methods=METHODS, n_crops=2)
    evaluate(db=str(db), **kwargs)
    original = {str(p.relative_to(folder)): Image.open(p).convert("RGB").tobytes() for p in sorted(folder.rglob("*.png"))}
    assert live_pixels(db) == original
    other = shapes(tmp_path / "other")
    repaint(other)  # other pixels under the same names
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", KILLED_INGEST, str(marker), str(db), str(other)],
                             env=dict(__import__("os").environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_marker(child, marker, 120, "re-ingest writing two shards")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert live_pixels(db) == original  # the old dataset, whole: manifest and shards agree
    kept = evaluate(db=str(db), **dict(kwargs, n_crops=3))  # new features, computed from the live shards
    fresh = tmp_path / "fresh.duckdb"
    ingest(fresh, folder)
    assert latest_predictions(db, kept["run_id"]) == latest_predictions(fresh, evaluate(db=str(fresh), **dict(kwargs, n_crops=3))["run_id"])
    # the next ingest switches whole to the new images and leaves one shard folder
    ingest(db, other)
    assert live_pixels(db) != original and evaluate(db=str(db), **kwargs)["encoded_shards"] == 3
    assert len([p for p in (tmp_path / "artifacts" / "shards" / "shapes").iterdir()]) == 1


def test_cli_errors_are_one_line_with_a_class_exit_code(tmp_path, capsys):
    from app.cli import main

    garbage = tmp_path / "not-a-workspace.duckdb"
    garbage.write_text("this is not a DuckDB file")
    assert main(["runs", "--db", str(garbage)]) == 5  # a workspace file DuckDB cannot read: one line, with the remedy
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("glocal: error: ") and "--db (or GLOCAL_DB)" in err and "Traceback" not in err
    with pytest.raises(Exception):
        main(["--debug", "runs", "--db", str(garbage)])
    missing = tmp_path / "typo.duckdb"
    assert main(["evaluate", "shapes", "--model", "m", "--db", str(missing)]) == 2
    assert "no glocal workspace here" in capsys.readouterr().err and not missing.exists()  # nothing created
    for bad in (["--batch-size", "0"], ["--n-crops", "-3"], ["--workers", "0"]):
        with pytest.raises(SystemExit) as stop:
            main(["evaluate", "shapes", "--model", "m", "--db", str(garbage), *bad])
        assert stop.value.code == 2 and "must be a positive integer" in capsys.readouterr().err


def test_unknown_text_dataset_and_models_fail_before_any_stage(tmp_path, tiny_clip_dir):
    from runs import evaluate

    db = tmp_path / "w.duckdb"
    ingest(db, shapes(tmp_path / "shapes"))
    kwargs = dict(dataset="shapes", db=str(db), methods=["clip", "abs"], n_crops=2)
    with pytest.raises(ValueError, match="--text-dataset 'imagenett': no CuPL, CLIP-D or template file"):
        evaluate(model=str(tiny_clip_dir), attention_model=str(tiny_clip_dir), text_dataset="imagenett", **kwargs)
    with pytest.raises(FileNotFoundError, match="/nope/dino: no such model directory"):
        evaluate(model=str(tiny_clip_dir), attention_model="/nope/dino", **kwargs)
    with pytest.raises(ValueError, match="not in the local Hugging Face cache, and HF_HUB_OFFLINE is set"):
        evaluate(model="openai/clip-vit-base-patchl6", attention_model=str(tiny_clip_dir), **kwargs)
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_clip_dir, broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        evaluate(model=str(broken), attention_model=str(tiny_clip_dir), **kwargs)
    with pytest.raises(ValueError, match="ABS with DINO attention needs --attention-model"):  # refused by the plan, first
        evaluate(model=str(broken), **kwargs)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM artifacts").fetchone()[0] == 0  # no stage ran


def fish_folders(root, names):
    """Class folders of drawn images, one colour per folder (so a photo's folder is known)."""
    from PIL import Image

    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (32, 24), (40 * k, 100, 30 * i)).save(root / name / f"{i}.png")
    return root


def labels_by_folder(db):
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT image_id, label FROM images ORDER BY image_id").fetchall()
    return {image_id.split("/")[0]: label for image_id, label in rows}


def test_class_folders_are_matched_to_the_class_list_by_name_or_id(tmp_path, capsys):
    import json

    from app.cli import main

    names = tmp_path / "names.json"
    folders = fish_folders(tmp_path / "fish", ["tench", "goldfish"])  # sorted: goldfish, tench
    names.write_text(json.dumps(["tench", "goldfish"]))
    assert main(["ingest", "fish", str(folders), "--classnames", str(names), "--db", str(tmp_path / "a.duckdb")]) == 0
    assert labels_by_folder(tmp_path / "a.duckdb") == {"tench": 0, "goldfish": 1}  # not goldfish photos labelled tench
    names.write_text(json.dumps(["cat", "dog", "bird"]))
    assert main(["ingest", "fish", str(folders), "--classnames", str(names), "--db", str(tmp_path / "b.duckdb")]) == 2
    err = capsys.readouterr().err
    assert "2 of 2 class folder(s) match no class name: ['goldfish', 'tench']" in err and "--class-ids" in err
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps(["f-cat", "goldfish-ish", "f-bird"]))
    (folders / "goldfish").rename(folders / "goldfish-ish")
    (folders / "tench").rename(folders / "f-cat")
    assert main(["ingest", "fish", str(folders), "--classnames", str(names), "--class-ids", str(ids), "--db", str(tmp_path / "c.duckdb")]) == 0
    assert labels_by_folder(tmp_path / "c.duckdb") == {"f-cat": 0, "goldfish-ish": 1}
    numbered = fish_folders(tmp_path / "numbered", ["0", "2"])
    assert main(["ingest", "n", str(numbered), "--classnames", str(names), "--db", str(tmp_path / "d.duckdb")]) == 0
    assert labels_by_folder(tmp_path / "d.duckdb") == {"0": 0, "2": 2}


def test_imagenet_wnid_folders_take_their_imagenet_labels(tmp_path, shared):
    from glocal.text.files import load_classnames
    from tasks.ingest import ingest_folder

    folders = fish_folders(tmp_path / "val", ["n01443537", "n01440764", "n01484850"])  # goldfish, tench, great white shark
    ingest_folder(str(tmp_path / "w.duckdb"), "in", str(folders), classnames=load_classnames(shared / "classnames" / "imagenet.json"))
    assert labels_by_folder(tmp_path / "w.duckdb") == {"n01440764": 0, "n01443537": 1, "n01484850": 2}


def test_images_as_they_are_shown(tmp_path):
    """16-bit greys scaled (not saturated), EXIF orientation applied, alpha flattened on white, and
    the shard decoder (what attention and encode see) the same as ingest's check."""
    import io

    import numpy as np
    from PIL import Image

    from glocal.data.images import open_image
    from glocal.data.shards import iter_shard, write_shard

    ramp = (np.arange(64 * 32, dtype=np.uint32).reshape(32, 64) * 32).astype(np.uint16)  # 0 .. 65504
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    grey = np.asarray(open_image(tmp_path / "deep.png"))[..., 0]
    assert np.array_equal(grey, (ramp >> 8).astype(np.uint8))  # before: 99 % of pixels at 255
    photo = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", exif=exif.tobytes())
    (tmp_path / "turned.jpg").write_bytes(buffer.getvalue())
    assert open_image(tmp_path / "turned.jpg").size == (20, 40)
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    clear.putpixel((0, 0), (10, 20, 30, 255))
    clear.save(tmp_path / "clear.png")
    flat = open_image(tmp_path / "clear.png")
    assert flat.getpixel((5, 5)) == (255, 255, 255) and flat.getpixel((0, 0)) == (10, 20, 30)
    write_shard(tmp_path / "s.tar", [("turned", 0, buffer.getvalue(), "jpg"), ("deep", 0, (tmp_path / "deep.png").read_bytes(), "png")])
    decoded = {i: im for i, _, im in iter_shard(tmp_path / "s.tar")}
    assert decoded["turned"].size == (20, 40) and np.array_equal(np.asarray(decoded["deep"])[..., 0], grey)


def test_an_image_over_the_pixel_limit_is_recorded_not_fatal(tmp_path, monkeypatch):
    from PIL import Image

    from storage import Catalog
    from tasks.ingest import ingest_folder

    folder = shapes(tmp_path / "shapes")
    Image.new("RGB", (400, 300)).save(folder / "red circle" / "huge.png")
    monkeypatch.setenv("GLOCAL_MAX_IMAGE_PIXELS", "100000")  # 0.1 MP: the 400 x 300 image is over it
    report = ingest_folder(str(tmp_path / "w.duckdb"), "shapes", str(folder), shard_size=4)
    assert report["images"] == 12 and [b[0] for b in report["bad"]] == ["red circle/huge.png"]
    assert "400x300 is 0.12 megapixels, over the limit of 0.1 (GLOCAL_MAX_IMAGE_PIXELS)" in report["bad"][0][1]
    assert Catalog(tmp_path / "w.duckdb").dataset("shapes")["shards"] == 3


def test_migrations_run_once_per_database_not_per_catalog_object(tmp_path, monkeypatch):
    """A new workspace gets the tables and every migration once and records the version; opening
    it again (a new process included) is one read; an older workspace is brought up to date once."""
    import storage.workspace as catalog_module
    from storage import Catalog
    from storage.schema import MIGRATIONS, SCHEMA_VERSION

    calls = []
    real = catalog_module.migrate
    monkeypatch.setattr(catalog_module, "migrate", lambda con: calls.append(real(con)) or calls[-1])
    db = tmp_path / "ws.duckdb"
    Catalog(db)
    Catalog(db)
    assert calls == [True]  # the second object: not even a read in this process
    monkeypatch.setattr(catalog_module, "_CURRENT", set())  # as a new process
    Catalog(db)
    assert calls == [True, False]  # one read of the recorded version, nothing changed
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT version FROM glocal_schema").fetchall() == [(SCHEMA_VERSION,)]
        con.execute("UPDATE glocal_schema SET version = 1")  # an older workspace
        con.execute("ALTER TABLE reproduction_cells DROP COLUMN form")
    monkeypatch.setattr(catalog_module, "_CURRENT", set())
    Catalog(db)
    assert calls == [True, False, True] and len(MIGRATIONS) == SCHEMA_VERSION - 1
    with duckdb.connect(str(db), read_only=True) as con:
        assert "form" in [c[0] for c in con.execute("DESCRIBE reproduction_cells").fetchall()]
