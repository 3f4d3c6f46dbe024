"""The pipeline end to end under a real (ephemeral) Prefect server, with tiny models."""

import os
import shutil

import duckdb
import pytest
from processes import wait_for_marker

ALL = ["clip", "clip_e", "clip_d", "waffle", "cupl", "wca", "abs", "lgca", "zero", "mta", "awt", "bifta"]


pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def sample40(shared, tmp_path):
    """40 shared photos plus a truncated JPEG and a text file posing as an image."""
    return make_sample40(shared, tmp_path / "images")


@pytest.fixture(scope="module")
def all_methods(shared, tmp_path_factory, tiny_clip_dir, tiny_dino_dir):
    """One workspace for the tests that read it (and add their own runs): the 40 photos (and two
    bad files), every method evaluated, then a two-value sweep of ABS's N. Class names as text:
    ImageNet's shipped text (230,000 sentences over the six text kinds, ~30 s to embed even for
    the tiny tower) is run by the README's block and tests/test_text_data.py."""
    from flows.sweep import sweep
    from runs import evaluate

    root = tmp_path_factory.mktemp("all-methods")
    db = root / "w.duckdb"
    report = ingest(db, make_sample40(shared, root / "images"))
    result = evaluate(dataset="sample", model=str(tiny_clip_dir), methods=ALL, db=str(db), attention_model=str(tiny_dino_dir), n_crops=4)
    swept = sweep(method="abs", param="n_crops", values=[2, 4], dataset="sample", model=str(tiny_clip_dir), db=str(db),
                  attention_model=str(tiny_dino_dir))
    return dict(db=db, report=report, result=result, sweep=swept, root=root)


def make_sample40(shared, root):
    src = shared / "images" / "imagenet-sample"
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
    from glocal.data.demo_data import SHARED_DATA

    names = json.loads((SHARED_DATA / "classnames" / "imagenet.json").read_text())
    return ingest_folder(str(db), "sample", str(root), shard_size=shard_size, classnames=names)


def test_evaluate_end_to_end_and_sql(all_methods, tmp_path):
    db, report, result = all_methods["db"], all_methods["report"], all_methods["result"]
    assert report["images"] == 40 and report["shards"] == 5
    assert sorted(b[0] for b in report["bad"]) == ["notes.jpg", "truncated.jpg"]
    assert set(result["accuracy"]) == set(ALL)
    run = result["run_id"]
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM predictions WHERE run_id = ?", [run]).fetchone()[0] == 40 * len(ALL)
        assert con.execute("SELECT count(*) FROM accuracy WHERE run_id = ?", [run]).fetchone()[0] == len(ALL)
        assert con.execute("SELECT count(*) FROM bad_images WHERE reason LIKE '%'").fetchone()[0] == 2
        # SQL over the Parquet views joins with the catalog tables
        joined = con.execute(
            "SELECT count(*) FROM predictions p JOIN encode_artifacts e USING (image_id) WHERE p.method = 'abs' AND p.run_id = ?"
            " AND e.filename LIKE '%' || (SELECT encode_key FROM runs WHERE run_id = ?) || '%'", [run, run]).fetchone()[0]
        assert joined == 40
        assert con.execute("SELECT count(DISTINCT image_id) FROM attention_artifacts").fetchone()[0] == 40
    finally:
        con.close()
    _check_report(db, result["run_id"], tmp_path / "report.html")


def _check_report(db, run_id, out):
    """The HTML report: tables with the expected rows, every image a decodable PNG data URI."""
    import base64
    import io
    from html.parser import HTMLParser

    from PIL import Image

    from app.report import build_report

    summary = build_report(str(db), [run_id], out, gallery=4, classes=3)
    assert summary["gallery"] == 4 and summary["comparisons"] == len(ALL) - 1

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.current, self.images = {}, None, []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "table":
                self.current = attrs["class"]
                self.tables[self.current] = 0
            elif tag == "tr" and self.current:
                self.tables[self.current] += 1
            elif tag == "img":
                self.images.append((attrs["alt"], attrs["src"]))

        def handle_endtag(self, tag):
            if tag == "table":
                self.current = None

    page = Collect()
    text = out.read_text()
    page.feed(text)
    assert page.tables["accuracy"] == 1 + len(ALL) and page.tables["compare"] == len(ALL)
    # 40 photos of 40 classes: no class has the 5 images a per-class accuracy needs, and the report says so
    assert "classes" not in page.tables and "Per-class accuracy is not shown: no class has 5 or more images" in text
    # the bar plot, the colour scale, then per card: attention, top crops, their windows, every crop on demand
    alts = [alt for alt, _ in page.images]
    assert alts == ["accuracy per method", "attention colour scale"] + ["attention", "top crops", "feature windows", "all crops"] * 4
    assert summary["plots"] == 2  # the accuracy bars and the accuracy-against-compute plot
    for alt, src in page.images:
        assert src.startswith("data:image/png;base64,")  # nothing fetched from anywhere
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.load()
            assert alt in ("accuracy per method", "attention colour scale") or max(im.size) == 224


@pytest.mark.browser
def test_report_of_a_40_image_run_in_the_browser(all_methods, tmp_path):
    """As a user opens it: the heatmaps' colour scale is on the page, the gallery starts within
    the first screen after the tables (no per-class table of one-image classes in between), and
    the accuracy-against-compute plot (#30) has a point per (run, method) at its stored GFLOP and
    top-1 on a log axis, the front through the points the stored numbers put on it, the sweep
    joined and the axis labels."""
    import math

    from browser import IMAGES_JS, broken_images, headless
    from app.report import build_report
    from glocal.results.cost_plot import CostPoint, pareto_front
    from storage import Catalog

    db = all_methods["db"]
    run_ids = [all_methods["result"]["run_id"]] + [p["run_id"] for p in all_methods["sweep"]["points"]]
    out = tmp_path / "report.html"
    build_report(str(db), run_ids, out, gallery=6)
    catalog = Catalog(str(db))
    costs = catalog.costs()
    stored = {(r, m): (costs[(r, m)]["gflop_per_image"], 100 * top1) for r, _, _, m, _, top1 in catalog.accuracy() if r in run_ids}
    keys = list(stored)
    expected_front = sorted(keys[i] for i in pareto_front([CostPoint(r, m, "", g, t) for (r, m), (g, t) in stored.items()]))
    with headless(height=1000) as browser:
        browser.get(out.resolve().as_uri())
        images = browser.execute_script(IMAGES_JS)
        gallery_top, tables_bottom, screen = browser.execute_script(
            "const g = document.querySelector('.gallery').getBoundingClientRect().top;"
            "const t = Array.from(document.querySelectorAll('table')).filter("
            "  x => x.compareDocumentPosition(document.querySelector('.gallery')) & Node.DOCUMENT_POSITION_FOLLOWING);"
            "return [g, t[t.length - 1].getBoundingClientRect().bottom, window.innerHeight]")
        scale = browser.execute_script("const s = document.querySelector('img.scale'); const r = s.getBoundingClientRect();"
                                       "return [s.alt, s.naturalWidth, r.width, r.top < document.querySelector('.gallery').getBoundingClientRect().top]")
        circles = browser.execute_script(
            "return Array.from(document.querySelectorAll('svg.cost-plot circle.point')).map(c => [c.dataset.run, c.dataset.method,"
            " +c.dataset.gflop, +c.dataset.top1, c.classList.contains('on-front'), +c.getAttribute('cx'), c.getBoundingClientRect().width])")
        front = browser.execute_script("return document.querySelector('svg.cost-plot polyline.front').getAttribute('points')")
        sweep_lines = browser.execute_script("return Array.from(document.querySelectorAll('svg.cost-plot polyline.sweep')).map(p => p.getAttribute('points'))")
        labels = browser.execute_script("return [document.querySelector('svg.cost-plot .x-label').textContent,"
                                        " document.querySelector('svg.cost-plot .y-label').textContent]")
        if os.environ.get("GLOCAL_SCREENSHOT"):
            browser.save_screenshot(os.environ["GLOCAL_SCREENSHOT"])
    assert broken_images(images) == []
    assert scale[0] == "attention colour scale" and scale[1] > 0 and scale[2] > 0 and scale[3]  # shown above the gallery
    assert 0 < gallery_top - tables_bottom < screen, (gallery_top, tables_bottom, screen)
    # the cost plot: every method of the run and the sweep's two points
    assert len(circles) == len(stored) == len(ALL) + 2
    for run_id, method, gflop, top1, on_front, cx, shown in circles:
        assert gflop == pytest.approx(stored[(run_id, method)][0], rel=1e-5) and top1 == pytest.approx(stored[(run_id, method)][1], abs=1e-3)
        assert shown > 0
    assert sorted((r, m) for r, m, _, _, on_front, _, _ in circles if on_front) == expected_front
    assert len(front.split()) == len(expected_front)
    by_cost = sorted(circles, key=lambda c: c[2])  # a log axis: x grows with log10(GFLOP), one slope for every point
    cheap, dear = by_cost[0], by_cost[-1]
    slope = (dear[5] - cheap[5]) / (math.log10(dear[2]) - math.log10(cheap[2]))
    assert all(c[5] == pytest.approx(cheap[5] + slope * (math.log10(c[2]) - math.log10(cheap[2])), abs=0.2) for c in circles)
    assert len(sweep_lines) == 1 and len(sweep_lines[0].split()) == 2
    assert labels == ["GFLOP per image (log scale)", "top-1 accuracy (%)"]


def test_restart_after_failure_on_third_shard(sample40, tmp_path, tiny_clip_dir, tiny_dino_dir, monkeypatch):
    import tasks.encode as encode_mod
    from runs import evaluate

    # (class names as text: resuming is the point, and ImageNet's text files cost seconds per workspace)
    kwargs = dict(model=str(tiny_clip_dir), methods=["clip", "wca", "abs"], attention_model=str(tiny_dino_dir), n_crops=3)
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
    from runs import evaluate

    db = tmp_path / "w.duckdb"
    ingest(db, sample40)
    kwargs = dict(dataset="sample", db=str(db), model=str(tiny_clip_dir), methods=["cupl", "wca"], n_crops=3)  # class names as text
    first = evaluate(**kwargs)
    calls = []
    real = encode_mod.encode_images
    monkeypatch.setattr(encode_mod, "encode_images", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    assert evaluate(**kwargs)["run_id"] == first["run_id"] and calls == []
    new_descriptions = tmp_path / "new.json"
    from glocal.data.demo_data import SHARED_DATA

    names = json.loads((SHARED_DATA / "classnames" / "imagenet.json").read_text())
    new_descriptions.write_text(json.dumps({n: [f"a blurry photo of a {n}."] for n in set(names)}))
    second = evaluate(descriptions=str(new_descriptions), **kwargs)
    assert calls == [] and second["text_key"] != first["text_key"] and second["run_id"] != first["run_id"]


def test_official_forms_through_evaluate_store_draws_in_sql(all_methods, tiny_clip_dir, monkeypatch):
    """WCA's official protocol (a pool, draws with replacement, mean ± std), CLIP-D/Waffle's
    official averaging and Waffle's official construction, run by the flow: each draw's accuracy is
    in draw_accuracy, computed again here from draw_predictions; the draws reuse the stored crops."""
    import json

    import tasks.encode as encode_mod
    from runs import evaluate

    # in the shared workspace, whose text (class names) is embedded already; these runs add their own keys
    db = all_methods["db"]
    common = dict(dataset="sample", db=str(db), model=str(tiny_clip_dir), n_crops=5)
    # the official presets crop the model input as torchvision does (crop_rounding "auto"): the
    # same as asking for it by name
    single = evaluate(methods=["wca"], crop_rounding="round", **common)
    calls = []
    real = encode_mod.encode_images
    monkeypatch.setattr(encode_mod, "encode_images", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    presets = {"wca": "wca-official", "clip_d": "clip_d-official", "waffle": "waffle-official"}
    result = evaluate(methods=["wca", "clip_d", "waffle"], presets=presets, **common)
    assert calls == []  # draws and averaging are scoring-only: the pool of 5 crops stored by the first run serves
    con = duckdb.connect(str(db), read_only=True)
    try:
        draws = con.execute("SELECT draw, images, top1_pct / 100 FROM draw_accuracy WHERE run_id = ? AND method = 'wca' ORDER BY draw",
                            [result["run_id"]]).fetchall()
        assert [d for d, _, _ in draws] == list(range(20)) and {n for _, n, _ in draws} == {40}
        rows = con.execute("SELECT label, draw_predictions FROM predictions WHERE run_id = ? AND method = 'wca'", [result["run_id"]]).fetchall()
        by_hand = [sum(p[d] == label for label, p in rows) / len(rows) for d in range(20)]
        assert [t for _, _, t in draws] == pytest.approx(by_hand)
        mean = sum(by_hand) / 20
        std = (sum((a - mean) ** 2 for a in by_hand) / 20) ** 0.5  # population std, as np.std
        top1, top1_std, n = con.execute("SELECT top1_pct / 100, top1_std_pct / 100, draws FROM accuracy WHERE run_id = ? AND method = 'wca'",
                                        [result["run_id"]]).fetchone()
        assert (top1, top1_std, n) == (pytest.approx(mean), pytest.approx(std), 20)
        assert con.execute("SELECT draws, top1_std_pct FROM accuracy WHERE run_id = ? AND method = 'clip_d'", [result["run_id"]]).fetchone() == (1, None)
        assert con.execute("SELECT count(*) FROM predictions WHERE run_id = ? AND draw_predictions IS NOT NULL", [single["run_id"]]).fetchone()[0] == 0
    finally:
        con.close()
    sentences = json.loads(next((all_methods["root"] / "artifacts" / "sentences").glob(f"{result['text_key']}.json")).read_text())
    assert all(s.startswith(f"A photo of a {c}, which ") for c, ss in zip(sentences["classnames"], sentences["waffle"]) for s in ss)
    assert {len(ss) for ss in sentences["waffle"]} == {30}


def test_engine_options_reach_the_encoder_and_stay_out_of_keys(sample40, tmp_path, tiny_clip_dir, monkeypatch):
    """--compile and --batch-size reach every shard's engine; they change how features are computed,
    not which, so a rerun without them reuses everything."""
    import dataclasses

    import tasks.encode as encode_mod
    from runs import evaluate

    db = tmp_path / "w.duckdb"
    ingest(db, sample40)
    engines, real = [], encode_mod.encode_images

    def recording(*args):
        engines.append(args[-1])
        return real(*args[:-1], dataclasses.replace(args[-1], compile=False))  # the wiring is under test, not compile itself

    monkeypatch.setattr(encode_mod, "encode_images", recording)
    kwargs = dict(dataset="sample", db=str(db), model=str(tiny_clip_dir), methods=["wca"], n_crops=3)  # class names as text
    first = evaluate(compile=True, batch_size=7, **kwargs)
    assert len(engines) == 5 and all(e.compile and e.batch_size == 7 for e in engines)  # 40 images, shards of 8
    assert evaluate(**kwargs)["run_id"] == first["run_id"] and len(engines) == 5


def test_bad_inputs_fail_before_compute(sample40, tmp_path, tiny_clip_dir):
    from runs import evaluate

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
    # ABS on 1000 classes x 50 sentences x 120 crops cannot be soft-matched in 64 KiB: said before any stage runs
    with pytest.raises(ValueError, match=r"abs: its smallest scoring chunk needs 539.1 KiB but the scoring memory budget is 64.0 KiB; raise --score-memory"):
        evaluate(dataset="sample", db=str(db), model=str(tiny_clip_dir), methods=["clip", "abs"], text_dataset="imagenet", score_memory="64K",
                 attention_model=str(tiny_clip_dir))  # (a model directory: ABS without one is refused first, by the plan)
    with pytest.raises(ValueError, match="--score-memory takes bytes"):
        evaluate(dataset="sample", db=str(db), model=str(tiny_clip_dir), methods=["clip"], text_dataset="imagenet", score_memory="lots")
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM artifacts WHERE stage IN ('text', 'attention', 'encode', 'score')").fetchone()[0] == 0


def test_cli_ingest_evaluate_runs_sql(sample40, tmp_path, tiny_clip_dir, capsys):
    from app.cli import main

    db = str(tmp_path / "cli.duckdb")
    names = str(__import__("glocal.data.demo_data", fromlist=["x"]).SHARED_DATA / "classnames" / "imagenet.json")
    assert main(["ingest", "s", str(sample40), "--classnames", names, "--shard-size", "16", "--limit", "20", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "ingested 20 images into 2 shard(s)" in out
    assert main(["evaluate", "s", "--model", str(tiny_clip_dir), "--methods", "clip,cupl", "--db", db]) == 0
    table = capsys.readouterr().out.splitlines()  # the accuracy table on stdout, where `> out.txt` keeps it
    assert table[0].startswith("run ") and [line.split()[:2] for line in table[2:]] == [["clip", "20"], ["cupl", "20"]]
    assert main(["runs", "--db", db]) == 0
    assert len([l for l in capsys.readouterr().out.splitlines() if l.split()[1] == "s"]) == 2
    assert main(["sql", "SELECT method, count(*) FROM predictions GROUP BY method ORDER BY method", "--db", db]) == 0
    assert [l.split() for l in capsys.readouterr().out.splitlines()[1:]] == [["clip", "20"], ["cupl", "20"]]
    assert main(["sql", "DELETE FROM predictions", "--db", db]) == 2  # read-only
    assert "read-only" in capsys.readouterr().err.lower()

    assert main(["compare", "clip", "cupl", "--resamples", "500", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "on 20 paired images" in out and "McNemar" in out and "95% interval" in out
    assert main(["compare", "clip", "nope", "--db", db]) == 2
    assert main(["compare", "clip", "cupl", "--resamples", "500", "--format", "json", "--db", db]) == 0
    (row,) = __import__("json").loads(capsys.readouterr().out)
    assert row["images"] == 20 and row["a"].endswith(":clip") and row["interval_low_pct"] <= row["difference_pct"] <= row["interval_high_pct"]

    # describe --import: a new set, and the run that used the old one re-scored with it
    mine = tmp_path / "mine.json"
    names_list = __import__("json").loads(open(names).read())
    mine.write_text(__import__("json").dumps({n: [f"a close-up photo of a {n}."] for n in set(names_list)}))
    assert main(["describe", "s", "--import", str(mine), "--db", db]) == 0
    assert main(["sql", "SELECT count(*) FROM runs WHERE description_set LIKE 's:file:mine#%'", "--db", db]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1"
    assert main(["describe", "s", "--db", db]) == 2  # neither a model nor a file


def test_cli_eval_one_step_writes_json_and_csv(sample40, tmp_path, tiny_clip_dir, capsys):
    """`glocal eval FOLDER --output r.json`: ingested once, evaluated, one JSON object a script
    reads (README schema); the same command again reuses the ingest and the run."""
    import csv
    import json

    from app.cli import main

    db = str(tmp_path / "ws" / "glocal.duckdb")
    names = str(__import__("glocal.data.demo_data", fromlist=["x"]).SHARED_DATA / "classnames" / "imagenet.json")
    out = tmp_path / "r.json"
    argv = ["eval", str(sample40), "--model", str(tiny_clip_dir), "--methods", "clip,wca", "--preset", "wca=wca-official",
            "--n-crops", "3", "--classnames", names, "--db", db]
    assert main([*argv, "--output", str(out)]) == 0
    assert "ingested 40 images (2 unreadable, skipped) as dataset 'images'" in capsys.readouterr().err
    result = json.loads(out.read_text())
    assert set(result) == {"glocal", "run_id", "dataset", "folder", "model", "attention_model", "text_dataset", "text_files", "db", "results"}
    assert result["dataset"] == "images" and result["folder"] == str(sample40.resolve())
    by_method = {r["method"]: r for r in result["results"]}
    assert set(by_method) == {"clip", "wca"} and {r["images"] for r in result["results"]} == {40}
    assert by_method["clip"]["draws"] == 1 and by_method["clip"]["top1_std_pct"] is None
    assert by_method["wca"]["draws"] == 20 and by_method["wca"]["top1_std_pct"] is not None
    con = duckdb.connect(db, read_only=True)
    try:
        top1 = dict(con.execute("SELECT method, top1_pct FROM accuracy WHERE run_id = ?", [result["run_id"]]).fetchall())
    finally:
        con.close()
    assert {m: r["top1_pct"] for m, r in by_method.items()} == pytest.approx(top1)
    table = tmp_path / "r.csv"
    assert main([*argv, "--output", str(table)]) == 0
    assert "ingested" not in capsys.readouterr().err  # the workspace already holds this folder
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert [(r["run_id"], r["method"], r["draws"]) for r in rows] == [(result["run_id"], "clip", "1"), (result["run_id"], "wca", "20")]
    assert main([*argv, "--output", str(tmp_path / "r.txt")]) == 2
    # the folder changed (an image rewritten with other pixels): it is read again, never reused as it was
    from PIL import Image

    first = sorted(sample40.glob("n*.jpg"))[0]
    Image.new("RGB", (64, 48), (255, 0, 0)).save(first, "JPEG")
    assert main([*argv, "--output", str(out)]) == 0
    assert "ingested 40 images" in capsys.readouterr().err
    # as are other ingest options
    assert main([*argv, "--limit", "10", "--output", str(out)]) == 0
    assert "ingested 10 images" in capsys.readouterr().err and {r["images"] for r in json.loads(out.read_text())["results"]} == {10}


def test_describe_flow_rescores_old_runs_without_reencoding(tmp_path, tiny_clip_dir, monkeypatch):
    """Generate descriptions from a stub LLM for a 3-class dataset, then the runs that used the
    default set are re-scored with the new one: new text embeddings, no image encode, LGCA named
    as left out, old vs new printed."""
    import tasks.encode as encode_mod
    from flows.describe import describe
    from runs import evaluate
    from glocal.data.demo_data import generate_images
    from tasks.ingest import ingest_folder
    from test_describe import KEY, StubLLM

    db = str(tmp_path / "w.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "shapes")), shard_size=4)
    first = evaluate(dataset="shapes", db=db, model=str(tiny_clip_dir), methods=["clip", "cupl", "wca", "lgca"], n_crops=3)
    assert first["description_set"].startswith("shapes:file:classnames-default#")
    # a later run on another set (an imported file): re-scored too, not only the latest run's set
    mine = tmp_path / "mine.json"
    mine.write_text('{"red circle": ["a red disc."], "green square": ["a green box."], "blue triangle": ["a blue wedge."]}')
    second = evaluate(dataset="shapes", db=db, model=str(tiny_clip_dir), methods=["cupl"], descriptions=str(mine))
    assert second["description_set"] != first["description_set"]

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
    assert result["old_sets"] == [first["description_set"], second["description_set"]]
    assert [(row[1], row[3]) for row in result["comparison"]] == [(first["run_id"], "clip"), (first["run_id"], "cupl"),
                                                                  (first["run_id"], "wca"), (second["run_id"], "cupl")]
    assert result["left_out"] == [(first["run_id"], "lgca")]
    clip_row = result["comparison"][0]
    assert clip_row[4] == clip_row[5] == first["accuracy"]["clip"]  # CLIP does not read descriptions
    cupl_rows = [row for row in result["comparison"] if row[3] == "cupl"]
    assert cupl_rows[0][5] == cupl_rows[1][5]  # both runs now score the same new descriptions
    out = result["table"]
    assert "new: shapes:stub-model:cupl-short-v1:v1" in out and out.count("shapes:file:classnames-default#") == 3
    with duckdb.connect(db, read_only=True) as con:
        new_run = result["comparison"][0][2]
        assert con.execute("SELECT description_set FROM runs WHERE run_id = ?", [new_run]).fetchone()[0] == result["description_set"]
        # two runs' text, then each re-scored run's (its own methods' sentence kinds, the new set)
        assert con.execute("SELECT count(DISTINCT key) FROM artifacts WHERE stage = 'text'").fetchone()[0] == 4
        assert con.execute("SELECT count(*) FROM descriptions WHERE set_id = ?", [result["description_set"]]).fetchone()[0] == 3 * 5


KILLED_RUN = """
import sys, threading
import tasks.encode as encode_mod
from flows.evaluate import evaluate
from glocal.run.request import RunRequest

real, seen = encode_mod.encode_images, []

def encode_then_hang_on_third_shard(backbone, images, ids, *args, **kw):
    seen.append(ids[0])
    if len(seen) == 3:
        open(sys.argv[1], "w").write("in shard 3")
        threading.Event().wait(600)  # the parent SIGKILLs us here, mid-shard
    return real(backbone, images, ids, *args, **kw)

encode_mod.encode_images = encode_then_hang_on_third_shard
evaluate(request=RunRequest.of(dataset="sample", model=sys.argv[3], methods=["clip", "abs"], attention_model=sys.argv[4],
                                n_crops=3), db=sys.argv[2])
"""


def kill_when_marked(script_text: str, tmp_path, db, *models) -> int:
    """Run ``script_text`` (argv: marker, db, models) in a child process against the test's Prefect
    server, SIGKILL it once it writes the marker (mid-shard), return its exit code."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from prefect.settings import PREFECT_API_URL

    marker = tmp_path / "marker"
    script = tmp_path / "killed_run.py"
    script.write_text(script_text)
    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value(), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, str(script), str(marker), str(db), *map(str, models)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_marker(child, marker, 240, "the run reaching the marked shard")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    return child.returncode


def reference_then_killed(script: str, kwargs: dict, sample40, tmp_path, clip_dir, dino_dir):
    """An uninterrupted run of ``kwargs`` in one workspace, and ``script`` SIGKILLed at its
    marker in another: -> (reference workspace, killed workspace)."""
    import signal

    from runs import evaluate

    ref_db = tmp_path / "ref.duckdb"
    ingest(ref_db, sample40)
    evaluate(dataset="sample", db=str(ref_db), **kwargs)
    db = tmp_path / "w.duckdb"
    ingest(db, sample40)
    assert kill_when_marked(script, tmp_path, db, clip_dir, dino_dir) == -signal.SIGKILL
    return ref_db, db


def test_sigkill_mid_shard_then_rerun(sample40, tmp_path, tiny_clip_dir, tiny_dino_dir, monkeypatch):
    from pathlib import Path

    import tasks.encode as encode_mod
    from runs import evaluate

    kwargs = dict(model=str(tiny_clip_dir), methods=["clip", "abs"], attention_model=str(tiny_dino_dir), n_crops=3)  # class names as text
    ref_db, db = reference_then_killed(KILLED_RUN, kwargs, sample40, tmp_path, tiny_clip_dir, tiny_dino_dir)

    with duckdb.connect(str(db), read_only=True) as con:
        assert sorted(r[0] for r in con.execute("SELECT shard FROM artifacts WHERE stage = 'encode'").fetchall()) == [0, 1]
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 0
    computed = []
    real = encode_mod.encode_images
    monkeypatch.setattr(encode_mod, "encode_images", lambda b, images, ids, *a, **k: (computed.append(ids[0]), real(b, images, ids, *a, **k))[1])
    evaluate(dataset="sample", db=str(db), **kwargs)
    assert len(computed) == 3  # shards 3-5 only

    query = "SELECT method, image_id, prediction, top5, top5_scores FROM predictions ORDER BY method, image_id"
    with duckdb.connect(str(db), read_only=True) as con:
        resumed = con.execute(query).fetchall()
        dupes = con.execute("SELECT count(*) - count(DISTINCT (stage, key, shard)) FROM artifacts").fetchone()[0]
        paths = [r[0] for r in con.execute("SELECT path FROM artifacts").fetchall()]
    with duckdb.connect(str(ref_db), read_only=True) as con:
        reference = con.execute(query).fetchall()
    assert resumed == reference and len(resumed) == 80 and dupes == 0
    assert all(not Path(p).name.startswith(".tmp") and (Path(db).parent / p).exists() for p in paths)  # workspace-relative


KILLED_SCORE = """
import sys, threading
import tasks.score as score_mod
from flows.evaluate import evaluate
from glocal.run.request import RunRequest

real, seen = score_mod.read_features, []

def read_then_hang_on_third_shard(*args, **kw):
    seen.append(args[0])
    if len(seen) == 3:
        open(sys.argv[1], "w").write("scoring shard 3")
        threading.Event().wait(600)  # the parent SIGKILLs us here, mid-score
    return real(*args, **kw)

score_mod.read_features = read_then_hang_on_third_shard
evaluate(request=RunRequest.of(dataset="sample", model=sys.argv[3], methods=["clip", "cupl", "abs"], attention_model=sys.argv[4],
                                n_crops=3), db=sys.argv[2])
"""


def test_sigkill_mid_score_then_rerun_scores_only_missing_shards(sample40, tmp_path, tiny_clip_dir, tiny_dino_dir, monkeypatch):
    """Scoring is per shard: a run killed while scoring shard 3 keeps shards 1-2's predictions
    files; the rerun re-encodes nothing, scores shards 3-5 only, and the catalog ends with exactly
    the predictions of an uninterrupted run (no duplicates)."""
    from pathlib import Path

    import tasks.encode as encode_mod
    import tasks.score as score_mod
    from runs import evaluate

    kwargs = dict(model=str(tiny_clip_dir), methods=["clip", "cupl", "abs"], attention_model=str(tiny_dino_dir), n_crops=3)  # class names as text
    ref_db, db = reference_then_killed(KILLED_SCORE, kwargs, sample40, tmp_path, tiny_clip_dir, tiny_dino_dir)

    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM artifacts WHERE stage = 'encode'").fetchone()[0] == 5
        assert sorted(r[0] for r in con.execute("SELECT shard FROM artifacts WHERE stage = 'score'").fetchall()) == [0, 1]
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 0
    encoded, scored = [], []
    real_encode, real_read = encode_mod.encode_images, score_mod.read_features
    monkeypatch.setattr(encode_mod, "encode_images", lambda *a, **k: (encoded.append(1), real_encode(*a, **k))[1])
    monkeypatch.setattr(score_mod, "read_features", lambda path, *a, **k: (scored.append(Path(path).name), real_read(path, *a, **k))[1])
    evaluate(dataset="sample", db=str(db), **kwargs)
    assert encoded == [] and sorted(scored) == ["shard-00002.parquet", "shard-00003.parquet", "shard-00004.parquet"]

    query = "SELECT method, image_id, label, prediction, correct, top5, top5_scores FROM predictions ORDER BY method, image_id"
    with duckdb.connect(str(db), read_only=True) as con:
        resumed = con.execute(query).fetchall()
        dupes = con.execute("SELECT count(*) - count(DISTINCT (run_id, method, image_id)) FROM predictions").fetchone()[0]
        accuracy = con.execute("SELECT method, images, top1_pct / 100 FROM accuracy ORDER BY method").fetchall()
    with duckdb.connect(str(ref_db), read_only=True) as con:
        reference = con.execute(query).fetchall()
        ref_accuracy = con.execute("SELECT method, images, top1_pct / 100 FROM accuracy ORDER BY method").fetchall()
    # identical predictions; scores equal to float32 round-off (the BLAS may round a product's last
    # bits differently in another process)
    assert [r[:6] for r in resumed] == [r[:6] for r in reference] and len(resumed) == 120 and dupes == 0
    assert [r[6] for r in resumed] == [pytest.approx(r[6], rel=1e-6) for r in reference]
    assert accuracy == ref_accuracy and [n for _, n, _ in accuracy] == [40, 40, 40]
    by_hand = {m: sum(c for mm, _, _, _, c, _, _ in reference if mm == m) / 40 for m in ("abs", "clip", "cupl")}
    assert {m: top1 for m, _, top1 in accuracy} == pytest.approx(by_hand)  # accuracy is computed from the stored rows


def test_cli_demo_runs_the_pipeline(tmp_path, tiny_clip_dir, tiny_dino_dir, capsys):
    from app.cli import main
    from glocal.data.demo_data import generate_images

    root = generate_images(tmp_path / "shapes")
    (root / "red circle" / "broken.png").write_text("not a png")
    args = ["demo", "--images", str(root), "--model", str(tiny_clip_dir), "--attention-model", str(tiny_dino_dir),
            "--n-crops", "4", "--workdir", str(tmp_path / "work")]
    assert main(args) == 0
    shown = capsys.readouterr()
    assert "ingested 12 images" in shown.err and "skipped red circle/broken.png" in shown.err  # glocal's lines on stderr
    assert shown.out.startswith("run ") and "top1_pct" in shown.out  # the results on stdout
    with duckdb.connect(str(tmp_path / "work" / "glocal.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 12 * 8  # the demo's eight default methods
        assert con.execute("SELECT count(DISTINCT stage) FROM artifacts").fetchone()[0] == 4  # text, attention, encode, score
