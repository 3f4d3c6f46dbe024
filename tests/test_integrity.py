"""A workspace under a hostile user: names that are paths, and artifacts of every kind deleted,
truncated, bit-flipped, swapped or taken from another run. Nothing is written or deleted outside
the workspace; a damaged artifact is detected, dropped and computed again by the same command,
which then stores exactly the predictions of an undamaged run."""

import contextlib
import io
import shutil
from pathlib import Path

import duckdb
import pytest

from test_pipeline import ingest, sample40  # noqa: F401 -- the fixture

needs_prefect = pytest.mark.usefixtures("prefect_server")

PREDICTIONS = "SELECT method, image_id, prediction, top5, top5_scores, correct FROM predictions WHERE run_id = ? ORDER BY method, image_id"


def test_a_dataset_name_that_is_a_path_is_refused_and_nothing_outside_is_touched(tmp_path, sample40):  # noqa: F811
    from app.cli import main
    from glocal.data.demo_data import SHARED_DATA

    names = str(SHARED_DATA / "classnames" / "imagenet.json")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "backup.tar").write_bytes(b"precious")
    (victim / "ingest-old").mkdir()
    db = tmp_path / "a" / "b" / "ws" / "glocal.duckdb"
    before = sorted(p for p in tmp_path.rglob("*") if "images" not in p.parts)
    for name in ["../../../victim", str(victim), "..", "a/b", "a\\b", "", "a b", "x" * 101]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert _exit(main, ["ingest", name, str(sample40), "--classnames", names, "--limit", "4", "--db", str(db)]) == 2, name
        assert "is not a name" in err.getvalue()
    # the same through the Python API and the other commands that take a dataset name
    from tasks.ingest import ingest_folder

    with pytest.raises(ValueError, match="is not a name"):
        ingest_folder(str(db), "../../../victim", str(sample40), classnames=__import__("json").loads(Path(names).read_text()), limit=4)
    for argv in (["evaluate", "../x", "--model", "m"], ["describe", "/abs", "--llm-model", "m"], ["eval", str(sample40), "--name", "../x", "--model", "m"]):
        with contextlib.redirect_stderr(io.StringIO()):
            assert _exit(main, [*argv, "--db", str(db)]) == 2
    assert (victim / "backup.tar").read_bytes() == b"precious" and (victim / "ingest-old").is_dir()
    after = sorted(p for p in tmp_path.rglob("*") if "images" not in p.parts)
    assert [p for p in after if p not in before and not p.is_relative_to(db.parent)] == []


def _exit(main, argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # refused by the parser, before any import of the pipeline
        return exc.code


def test_remove_unused_shards_never_follows_a_link_out_of_the_workspace(tmp_path):
    from storage import Catalog
    from tasks.ingest import remove_unused_shards

    catalog = Catalog(tmp_path / "ws" / "glocal.duckdb")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.tar").write_bytes(b"x")
    dataset_dir = catalog.artifact_root / "shards" / "d"
    live = dataset_dir / "ingest-live"
    live.mkdir(parents=True)
    (dataset_dir / "ingest-old").mkdir()
    (dataset_dir / "ingest-link").symlink_to(outside)
    (dataset_dir / "old.tar").symlink_to(outside / "keep.tar")
    remove_unused_shards(catalog, dataset_dir, live)
    assert (outside / "keep.tar").read_bytes() == b"x" and not (dataset_dir / "ingest-old").exists() and live.is_dir()
    with pytest.raises(ValueError, match="refused"):
        remove_unused_shards(catalog, outside, outside / "x")


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # one bit, in the middle of the file (a data page)
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])


def _delete(path: Path) -> None:
    path.unlink()


def _swap(path: Path, other: Path) -> None:
    shutil.copyfile(other, path)


def _artifacts(db: Path, stage: str) -> list[tuple[str, int, Path]]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT key, shard, path FROM artifacts WHERE stage = ? ORDER BY key, shard", [stage]).fetchall()
    return [(key, shard, db.parent / path) for key, shard, path in rows]


@needs_prefect
def test_every_kind_of_damage_to_every_artifact_kind_is_detected_and_recomputed(sample40, tmp_path, tiny_clip_dir, tiny_dino_dir,  # noqa: F811
                                                                                ):
    import logging

    from runs import evaluate

    class Messages(logging.Handler):  # what the runs log (Prefect's loggers do not all reach the root logger)
        def __init__(self):
            super().__init__(logging.INFO)
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    log = Messages()
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addHandler(log)

    # (no text dataset: each class is described by its name, so recomputing the text is quick)
    kwargs = dict(dataset="sample", model=str(tiny_clip_dir), methods=["clip", "wca", "abs"], attention_model=str(tiny_dino_dir), n_crops=3)
    db = tmp_path / "w.duckdb"
    ingest(db, sample40)
    # another run (other methods): its score files are "foreign" to the first run
    other = evaluate(db=str(db), **{**kwargs, "methods": ["clip", "clip_e"]})
    first = evaluate(db=str(db), **kwargs)
    with duckdb.connect(str(db), read_only=True) as con:
        reference = con.execute(PREDICTIONS, [first["run_id"]]).fetchall()
    assert len(reference) == 40 * 3 and other["run_id"] != first["run_id"]

    # the first run's own text artifact: its descriptions' embeddings (the other run has none)
    import json

    from glocal.backbones.identity import model_identity
    from glocal.run.plan import RunPlan

    sets = json.loads((tmp_path / "artifacts" / "sentences" / f"{first['text_key']}.json").read_text())
    descriptions = RunPlan.text_kind_keys(model_identity(str(tiny_clip_dir)), sets)["descriptions"]
    mine = {"score": _score_key(db, first["run_id"]), "encode": first["encode_key"], "text": descriptions}

    def damage_each_kind(damage) -> None:
        """``damage`` to one file of each of the four kinds (different shards), then one rerun."""
        for stage, shard in (("text", 0), ("attention", 1), ("encode", 2), ("score", 3)):
            rows = _artifacts(db, stage)
            path = next(p for k, s, p in rows if k == mine.get(stage, k) and s == shard)
            if damage is _swap:  # another file of the same stage: the other run's (text, score) or another shard's
                donor = next(p for k, s, p in rows if p != path and (k != mine[stage] if stage in ("text", "score") else True)
                             and (s == shard or stage != "score"))
                _swap(path, donor)
            else:
                damage(path)
        log.lines.clear()
        result = evaluate(db=str(db), **kwargs)
        label = damage.__name__
        assert result["run_id"] == first["run_id"], label
        with duckdb.connect(str(db), read_only=True) as con:
            again = con.execute(PREDICTIONS, [first["run_id"]]).fetchall()
            runs_without_row = con.execute("SELECT count(*) FROM predictions p ANTI JOIN runs r USING (run_id)").fetchone()[0]
        assert again == reference, label
        assert runs_without_row == 0, label
        said = [line for line in log.lines if "computed again" in line]
        for stage in ("text", "attention", "encode", "score"):  # each detected once, with what was wrong
            reports = [line for line in said if f"{stage} artifact" in line]
            assert len(reports) == 1, (label, stage, said)
            assert ("missing" in reports[0]) if damage is _delete else ("bytes" in reports[0]), (label, reports[0])

    try:
        for damage in (_flip, _truncate, _delete, _swap):
            damage_each_kind(damage)
    finally:
        for name in ("prefect.flow_runs", "prefect.task_runs"):
            logging.getLogger(name).removeHandler(log)


def _score_key(db: Path, run_id: str) -> str:
    from glocal.run.plan import score_key

    with duckdb.connect(str(db), read_only=True) as con:
        encode_key = con.execute("SELECT encode_key FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
    return score_key(run_id, encode_key)


def test_predictions_are_loaded_only_under_the_run_and_with_the_registered_rows(tmp_path):
    """A score file of another run, even when it passes as this run's file, adds no row."""
    import pyarrow as pa

    from storage import Catalog, write_parquet_atomic
    from tasks.score import PREDICTIONS as SCHEMA

    catalog = Catalog(tmp_path / "glocal.duckdb")
    catalog.start_run("mine", "d", "m", "none", ["clip"], {}, "t")

    def rows(run_id, n):
        return pa.table({"run_id": [run_id] * n, "method": ["clip"] * n, "preset_hash": ["h"] * n, "image_id": [f"{run_id}{i}" for i in range(n)],
                         "label": [0] * n, "prediction": [0] * n, "correct": [True] * n, "top5": [[0]] * n, "top5_scores": [[1.0]] * n,
                         "draw_predictions": [None] * n}, schema=SCHEMA)

    good = write_parquet_atomic(rows("mine", 8), tmp_path / "artifacts" / "score" / "k" / "shard-00000.parquet")
    foreign = write_parquet_atomic(rows("theirs", 8), tmp_path / "artifacts" / "score" / "k" / "shard-00001.parquet")
    with pytest.raises(RuntimeError, match="8 prediction rows of this run .* 16 were registered"):
        catalog.store_predictions("mine", [good, foreign], ["clip"], expected_rows=16)
    with duckdb.connect(str(catalog.path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 0
    assert catalog.store_predictions("mine", [good, foreign], ["clip"], expected_rows=8)[0][3] == 8


@needs_prefect
def test_sql_skips_a_damaged_artifact_and_is_bounded_in_time_memory_and_rows(sample40, tmp_path, tiny_clip_dir, capsys):  # noqa: F811
    from app.cli import main
    from runs import evaluate

    db = tmp_path / "w.duckdb"
    ingest(db, sample40)
    evaluate(dataset="sample", db=str(db), model=str(tiny_clip_dir), methods=["clip"])
    (_, _, path), *_ = [r for r in _artifacts(db, "encode") if r[1] == 1]
    _truncate(path)
    capsys.readouterr()
    assert main(["sql", "SELECT count(*) FROM runs", "--db", str(db)]) == 0
    assert capsys.readouterr().out.split()[-1] == "1"
    assert main(["sql", "SELECT count(DISTINCT image_id) FROM encode_artifacts", "--db", str(db)]) == 0
    out = capsys.readouterr()
    assert out.out.split()[-1] == "32"  # the 8 images of the truncated shard are left out, and named
    assert "encode_artifacts leaves out encode artifact" in out.err and "truncated" in out.err
    assert main(["sql", "SELECT count(*) FROM range(100000000000) a", "--timeout", "1", "--db", str(db)]) == 2
    assert "ran past 1 s" in capsys.readouterr().err
    assert main(["sql", "SELECT list(range) FROM range(300000000)", "--memory-limit", "64MB", "--db", str(db)]) == 2
    assert "more than 64MB" in capsys.readouterr().err
    assert main(["sql", "SELECT * FROM range(10)", "--max-rows", "3", "--format", "csv", "--db", str(db)]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == ["range", "0", "1", "2"] and "first 3 rows" in out.err


@needs_prefect
def test_the_report_draws_only_the_pixels_a_run_scored(sample40, tmp_path, tiny_clip_dir):  # noqa: F811
    import json

    from app.report import build_report
    from runs import evaluate
    from glocal.data.demo_data import SHARED_DATA
    from tasks.ingest import ingest_folder

    db = tmp_path / "w.duckdb"
    names = json.loads((SHARED_DATA / "classnames" / "imagenet.json").read_text())
    ingest_folder(str(db), "sample", str(sample40), shard_size=8, classnames=names, limit=16)
    kwargs = dict(dataset="sample", db=str(db), model=str(tiny_clip_dir), methods=["clip", "wca"], n_crops=3)
    old = evaluate(**kwargs)["run_id"]
    assert build_report(str(db), [old], str(tmp_path / "before.html"), gallery=3)["gallery"] == 3
    # the same name, other images: the old run's crops and predictions would be drawn on other pixels
    ingest_folder(str(db), "sample", str(sample40), shard_size=8, classnames=names, limit=24)
    summary = build_report(str(db), [old], str(tmp_path / "after.html"), gallery=3)
    assert summary["gallery"] == 0 and "changed since this run scored them" in (tmp_path / "after.html").read_text()
    new = evaluate(**kwargs)["run_id"]
    assert new != old and build_report(str(db), [new], str(tmp_path / "new.html"), gallery=3)["gallery"] == 3


@needs_prefect
def test_eval_reads_a_folder_again_when_a_file_holds_other_bytes_with_its_size_and_mtime_put_back(sample40, tmp_path, tiny_clip_dir):  # noqa: F811
    import os

    from app.cli import main
    from glocal.data.demo_data import SHARED_DATA

    db = str(tmp_path / "ws" / "glocal.duckdb")
    argv = ["eval", str(sample40), "--model", str(tiny_clip_dir), "--methods", "clip", "--limit", "8",
            "--classnames", str(SHARED_DATA / "classnames" / "imagenet.json"), "--db", db, "--output", str(tmp_path / "r.json")]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(argv) == 0 and main(argv) == 0
    assert err.getvalue().count("ingested 8 images") == 1  # the second run reused the ingest
    image = sorted(sample40.glob("n*.jpg"))[0]
    stat = image.stat()
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0x01
    image.write_bytes(bytes(data))
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert image.stat().st_size == stat.st_size and image.stat().st_mtime_ns == stat.st_mtime_ns
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(argv) == 0
    assert "ingested 8 images" in err.getvalue()


def test_bad_files_are_one_line_with_their_exit_code_and_a_remedy(tmp_path, tiny_clip_dir):
    from PIL import Image

    from app.cli import exit_code, main, one_line

    images = tmp_path / "imgs"
    for name in ("cat", "dog"):
        (images / name).mkdir(parents=True)
        Image.new("RGB", (40, 30), (200, 0, 0)).save(images / name / "0.jpg")
    db = str(tmp_path / "w.duckdb")

    def run(*argv) -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # refused at parse time
                code = exc.code
        return code, err.getvalue().strip()

    cases = {
        "file,label\ncat/0.jpg\n": "the row lacks a file or a label",  # a row with a missing field
        "file,label\ncat/0.jpg,0\ndog/0.jpg,\xff\n": "not UTF-8 text",
    }
    for text, said in cases.items():
        (images / "labels.csv").write_bytes(text.encode("latin-1"))
        code, err = run("ingest", "d", str(images), "--db", db)
        assert code == 2 and said in err and len(err.splitlines()) == 1, err
    (images / "labels.csv").unlink()
    # no readable image: an error, and nothing registered under the name
    empty = tmp_path / "empty" / "cat"
    empty.mkdir(parents=True)
    (empty / "x.jpg").write_text("not an image")
    code, err = run("ingest", "e", str(empty.parent), "--classnames", _classes(tmp_path), "--db", db)
    assert code == 2 and "no readable image to ingest" in err
    code, err = run("sql", "SELECT count(*) FROM datasets WHERE dataset = 'e'", "--db", db)
    assert code == 0
    # --db naming a folder: bad input (2), one line naming the file to give instead
    code, err = run("ingest", "d", str(images), "--db", str(tmp_path))
    assert code == 2 and f"is a folder: name the workspace's .duckdb file, e.g. {tmp_path / 'glocal.duckdb'}" in err and len(err.splitlines()) == 1
    # a truncated model.safetensors: named, with the remedy, as a file that cannot be read (5)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_clip_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    from glocal.encode import cache

    with pytest.raises(OSError) as info:
        cache.backbone(str(broken))
    assert exit_code(info.value) == 5 and str(broken) in one_line(info.value) and "download or build it again" in one_line(info.value)


def _classes(tmp_path) -> str:
    path = tmp_path / "classes.json"
    path.write_text('["cat", "dog"]')
    return str(path)


def test_every_method_s_crops_are_counted_before_any_compute(tmp_path):
    """WCA's and LGCA's crops count as ABS's do: a request for a billion crops is refused by the
    plan (and by the command line, in well under a second of work), naming the remedy."""
    import time

    from app.cli import main
    from glocal.methods.budget import BudgetError
    from glocal.run.request import RunRequest
    from glocal.run.plan import plan_run

    for methods, n in ((["wca"], 1_000_000_000), (["lgca"], 5000), (["clip", "abs"], 1500)):
        with pytest.raises(BudgetError, match="crops per image; glocal encodes at most 2,048 per image.*lower --n-crops"):
            plan_run(RunRequest.of(dataset="d", model="m", methods=methods, n_crops=n, attention_model="a"))
    # within the crop cap, one image's crop-class similarities must fit the scoring budget
    from glocal.methods.budget import ScoreShape
    from glocal.run.plan import check_memory

    wide = plan_run(RunRequest.of(dataset="d", model="m", methods=["wca"], n_crops=2000, score_memory="4M"))
    with pytest.raises(BudgetError, match="wca: its smallest scoring chunk needs 7.6 MiB"):  # 2,000 crops x 1,000 classes x 4 bytes
        check_memory(list(wide.runs), ScoreShape(1000, {}, {}), wide.memory)
    plan = plan_run(RunRequest.of(dataset="d", model="m", methods=["wca", "lgca", "clip"], n_crops=60))
    assert {run.spec.name: run.spec.crops_per_image(run.config) for run in plan.runs} == {"wca": 60, "lgca": 60 + 20 * 3, "clip": 0}
    from storage import Catalog

    db = tmp_path / "w.duckdb"
    Catalog(db)
    err, started = io.StringIO(), time.time()
    with contextlib.redirect_stderr(err):
        assert main(["evaluate", "d", "--model", "m", "--methods", "wca", "--n-crops", "1000000000", "--db", str(db)]) == 2
    assert "lower --n-crops" in err.getvalue() and time.time() - started < 10
