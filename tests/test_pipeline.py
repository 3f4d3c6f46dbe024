"""The pipeline end to end under a real (ephemeral) Prefect server, with tiny models."""

import os
import shutil

import duckdb
import pytest

ALL = ["clip", "clip_e", "clip_d", "waffle", "cupl", "wca", "abs", "lgca"]


@pytest.fixture(scope="module", autouse=True)
def prefect_harness(tmp_path_factory):
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def sample40(shared, tmp_path):
    """40 shared photos plus a truncated JPEG and a text file posing as an image."""
    src = shared / "images" / "imagenet-sample"
    root = tmp_path / "images"
    root.mkdir()
    lines = (src / "labels.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:41]
    for row in rows:
        shutil.copy(src / row.split(",")[0], root / row.split(",")[0])
    good = (root / rows[0].split(",")[0]).read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "notes.jpg").write_text("not an image")
    extra = ["truncated.jpg,n01440764,0,tench", "notes.jpg,n01440764,0,tench"]
    (root / "labels.csv").write_text("\n".join([header, *rows, *extra]) + "\n")
    return root


def ingest(db, root, shard_size=8):
    import json

    from tasks.ingest import ingest_folder
    from glocal.demo_data import SHARED_DATA

    names = json.loads((SHARED_DATA / "classnames" / "imagenet.json").read_text())
    return ingest_folder(str(db), "sample", str(root), shard_size=shard_size, classnames=names)


def test_evaluate_end_to_end_and_sql(sample40, tmp_path, tiny_clip_dir, tiny_dino_dir):
    from flows.evaluate import evaluate

    db = tmp_path / "w.duckdb"
    report = ingest(db, sample40)
    assert report["images"] == 40 and report["shards"] == 5
    assert sorted(b[0] for b in report["bad"]) == ["notes.jpg", "truncated.jpg"]
    result = evaluate(dataset="sample", model=str(tiny_clip_dir), methods=ALL, db=str(db),
                      attention_model=str(tiny_dino_dir), n_crops=4, text_dataset="imagenet")
    assert set(result["accuracy"]) == set(ALL)
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 40 * len(ALL)
        assert con.execute("SELECT count(*) FROM accuracy").fetchone()[0] == len(ALL)
        assert con.execute("SELECT count(*) FROM bad_images WHERE reason LIKE '%'").fetchone()[0] == 2
        # SQL over the Parquet views joins with the catalog tables
        joined = con.execute(
            "SELECT count(*) FROM predictions p JOIN encode_artifacts e USING (image_id) WHERE p.method = 'abs'"
        ).fetchone()[0]
        assert joined == 40
        assert con.execute("SELECT count(DISTINCT image_id) FROM attention_artifacts").fetchone()[0] == 40
    finally:
        con.close()


def test_restart_after_failure_on_third_shard(sample40, tmp_path, tiny_clip_dir, tiny_dino_dir, monkeypatch):
    import tasks.encode as encode_mod
    from flows.evaluate import evaluate

    kwargs = dict(model=str(tiny_clip_dir), methods=["clip", "wca", "abs"], attention_model=str(tiny_dino_dir), n_crops=3, text_dataset="imagenet")
    # an uninterrupted reference run in its own workspace
    ref_db = tmp_path / "ref.duckdb"
    ingest(ref_db, sample40)
    evaluate(dataset="sample", db=str(ref_db), **kwargs)

    db = tmp_path / "w.duckdb"
    ingest(db, sample40)
    real = encode_mod.encode_images
    computed = []

    def failing(backbone, images, ids, *args, **kw):
        shard = len(computed)
        if shard == 2:
            raise RuntimeError("injected failure on shard 3")
        computed.append(ids[0])
        return real(backbone, images, ids, *args, **kw)

    monkeypatch.setattr(encode_mod, "encode_images", failing)
    with pytest.raises(Exception, match="injected failure"):
        evaluate(dataset="sample", db=str(db), **kwargs)
    assert len(computed) == 2
    monkeypatch.setattr(encode_mod, "encode_images", lambda b, images, ids, *a, **k: (computed.append(ids[0]), real(b, images, ids, *a, **k))[1])
    evaluate(dataset="sample", db=str(db), **kwargs)
    assert len(computed) == 5  # only shards 3, 4 and 5 were computed on the rerun

    query = "SELECT method, image_id, prediction, top5, top5_scores FROM predictions ORDER BY method, image_id"
    with duckdb.connect(str(db), read_only=True) as con:
        resumed = con.execute(query).fetchall()
        dupes = con.execute("SELECT count(*) - count(DISTINCT (stage, key, shard)) FROM artifacts").fetchone()[0]
        pred_dupes = con.execute("SELECT count(*) - count(DISTINCT (run_id, method, image_id)) FROM predictions").fetchone()[0]
    with duckdb.connect(str(ref_db), read_only=True) as con:
        reference = con.execute(query).fetchall()
    assert resumed == reference and len(resumed) == 40 * 3
    assert dupes == 0 and pred_dupes == 0


def test_rerun_skips_everything_and_rescoring_with_new_descriptions_does_not_reencode(sample40, tmp_path, tiny_clip_dir, monkeypatch):
    import json

    import tasks.encode as encode_mod
    from flows.evaluate import evaluate

    db = tmp_path / "w.duckdb"
    ingest(db, sample40)
    kwargs = dict(dataset="sample", db=str(db), model=str(tiny_clip_dir), methods=["cupl", "wca"], n_crops=3, text_dataset="imagenet")
    first = evaluate(**kwargs)
    calls = []
    real = encode_mod.encode_images
    monkeypatch.setattr(encode_mod, "encode_images", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    assert evaluate(**kwargs)["run_id"] == first["run_id"] and calls == []
    new_descriptions = tmp_path / "new.json"
    from glocal.demo_data import SHARED_DATA

    names = json.loads((SHARED_DATA / "classnames" / "imagenet.json").read_text())
    new_descriptions.write_text(json.dumps({n: [f"a blurry photo of a {n}."] for n in set(names)}))
    second = evaluate(descriptions=str(new_descriptions), **kwargs)
    assert calls == [] and second["text_key"] != first["text_key"] and second["run_id"] != first["run_id"]


def test_bad_inputs_fail_before_compute(sample40, tmp_path, tiny_clip_dir):
    from flows.evaluate import evaluate

    db = tmp_path / "w.duckdb"
    with pytest.raises(ValueError, match="unknown method"):
        evaluate(dataset="sample", db=str(db), model=str(tiny_clip_dir), methods=["clip", "nope"])
    with pytest.raises(ValueError, match="not ingested"):
        evaluate(dataset="missing", db=str(db), model=str(tiny_clip_dir), methods=["clip"])
    ingest(db, sample40)
    mismatched = tmp_path / "bad.json"
    mismatched.write_text('{"tench": ["a fish"]}')
    with pytest.raises(ValueError, match="no descriptions for 999 of 1000 classes"):
        evaluate(dataset="sample", db=str(db), model=str(tiny_clip_dir), methods=["cupl"], descriptions=str(mismatched), text_dataset="imagenet")
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM artifacts WHERE stage = 'encode'").fetchone()[0] == 0


def test_cli_ingest_evaluate_runs_sql(sample40, tmp_path, tiny_clip_dir, capsys):
    from glocal.cli import main

    db = str(tmp_path / "cli.duckdb")
    names = str(__import__("glocal.demo_data", fromlist=["x"]).SHARED_DATA / "classnames" / "imagenet.json")
    assert main(["ingest", "s", str(sample40), "--classnames", names, "--shard-size", "16", "--limit", "20", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "ingested 20 images into 2 shard(s)" in out
    assert main(["evaluate", "s", "--model", str(tiny_clip_dir), "--methods", "clip,cupl", "--text-dataset", "imagenet", "--db", db]) == 0
    assert main(["runs", "--db", db]) == 0
    assert len([l for l in capsys.readouterr().out.splitlines() if "\ts\t" in l]) == 2
    assert main(["sql", "SELECT method, count(*) FROM predictions GROUP BY method ORDER BY method", "--db", db]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["clip\t20", "cupl\t20"]
    assert main(["sql", "DELETE FROM predictions", "--db", db]) == 2  # read-only
    assert "read-only" in capsys.readouterr().err.lower()


def test_describe_flow_rescores_old_runs_without_reencoding(tmp_path, tiny_clip_dir, monkeypatch):
    """Generate descriptions from a stub LLM for a 3-class dataset, then the runs that used the
    default set are re-scored with the new one: new text embeddings, no image encode, LGCA named
    as left out, old vs new printed."""
    import tasks.encode as encode_mod
    from flows.describe import describe
    from flows.evaluate import evaluate
    from glocal.demo_data import generate_images
    from tasks.ingest import ingest_folder
    from test_describe import KEY, StubLLM

    db = str(tmp_path / "w.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "shapes")), shard_size=4)
    first = evaluate(dataset="shapes", db=db, model=str(tiny_clip_dir), methods=["clip", "cupl", "wca", "lgca"], n_crops=3)
    assert first["description_set"].startswith("shapes:file:classnames-default#")

    stub = StubLLM(classes=["red circle", "green square", "blue triangle"])
    monkeypatch.setenv("GLOCAL_LLM_BASE_URL", stub.url)
    monkeypatch.setenv("GLOCAL_LLM_API_KEY", KEY)
    calls = []
    real = encode_mod.encode_images
    monkeypatch.setattr(encode_mod, "encode_images", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    try:
        result = describe(dataset="shapes", db=db, llm_model="stub-model", prompt_set="cupl-short-v1",
                          llm_options={"timeout_s": 5, "backoff_s": 0.01})
    finally:
        stub.close()
    assert calls == []  # nothing re-encoded
    assert result["description_set"] == "shapes:stub-model:cupl-short-v1:v1" and result["report"]["status"] == "complete"
    assert result["old_set"] == first["description_set"]
    assert [row[2] for row in result["comparison"]] == ["clip", "cupl", "wca"]
    assert result["left_out"] == [(first["run_id"], "lgca")]
    clip_row = result["comparison"][0]
    assert clip_row[3] == clip_row[4] == first["accuracy"]["clip"]  # CLIP does not read descriptions
    out = result["table"]
    assert "old: shapes:file:classnames-default#" in out and "new: shapes:stub-model:cupl-short-v1:v1" in out
    with duckdb.connect(db, read_only=True) as con:
        new_run = result["comparison"][0][1]
        assert con.execute("SELECT description_set FROM runs WHERE run_id = ?", [new_run]).fetchone()[0] == result["description_set"]
        assert con.execute("SELECT count(DISTINCT key) FROM artifacts WHERE stage = 'text'").fetchone()[0] == 2
        assert con.execute("SELECT count(*) FROM descriptions WHERE set_id = ?", [result["description_set"]]).fetchone()[0] == 3 * 5
