"""glocal sweep: points that change only scoring reuse one encode and give exactly the scores of a
fresh run; points that change crops encode once each; the report draws the sweep and the Table 4
shaped ablation; headless Chromium renders the report."""

import os

from browser import IMAGES_JS, broken_images, headless

from pathlib import Path

import duckdb
import pytest

from glocal.config import ABSConfig, WCAConfig, feature_fields, parse_field_value

pytestmark = pytest.mark.usefixtures("prefect_server")

ABLATION = ["abs-paper", "abs-frs-only", "abs-ffs-only", "abs-no-softm"]


@pytest.fixture
def shapes(tmp_path):
    """12 generated images of 3 classes, ingested as 3 shards of 4."""
    from glocal.data.demo_data import generate_images
    from tasks.ingest import ingest_folder

    db = str(tmp_path / "w.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "shapes")), shard_size=4)
    return db


def predictions(db, run_id, method):
    with duckdb.connect(db, read_only=True) as con:
        return con.execute("SELECT image_id, prediction, top5, top5_scores FROM predictions WHERE run_id = ? AND method = ?"
                           " ORDER BY image_id", [run_id, method]).fetchall()


def test_parse_field_value_types_and_errors():
    assert parse_field_value(ABSConfig, "n_crops", "10") == 10
    assert parse_field_value(ABSConfig, "alpha", "1") == 1.0 and isinstance(parse_field_value(ABSConfig, "alpha", "1"), float)
    assert parse_field_value(ABSConfig, "soft_matching", "false") is False
    assert parse_field_value(ABSConfig, "pairing", "code") == "code"
    assert parse_field_value(ABSConfig, "layer_id", "null") is None and parse_field_value(ABSConfig, "layer_id", "7") == 7
    with pytest.raises(ValueError, match="has no field 'alpah'"):
        parse_field_value(ABSConfig, "alpah", "0.3")
    with pytest.raises(ValueError, match="n_crops takes a int"):
        parse_field_value(ABSConfig, "n_crops", "ten")
    with pytest.raises(ValueError, match="takes true or false"):
        parse_field_value(ABSConfig, "use_raw", "1")


def test_split_values_keeps_lists():
    from app.commands.common import split_values

    assert split_values("10,20, 30") == ["10", "20", "30"]
    assert split_values("[0.5,0.5,0,0,0],[0.2,0.2,0.2,0.2,0.2]") == ["[0.5,0.5,0,0,0]", "[0.2,0.2,0.2,0.2,0.2]"]


def test_feature_fields_drop_exactly_the_scoring_fields():
    base = feature_fields(ABSConfig())
    for change in ({"soft_matching": False}, {"use_raw": False}, {"n_descriptions": 5}, {"match_temperature": 0.1}):
        assert feature_fields(ABSConfig(**change)) == base
    for change in ({"alpha": 0.3}, {"n_crops": 10}, {"top_k": 5}, {"layer_id": 3}, {"pairing": "code"}):
        assert feature_fields(ABSConfig(**change)) != base
    assert feature_fields(WCAConfig(form="paper")) == feature_fields(WCAConfig())


def test_ablation_table_hand_values():
    """Table 4 shape from fixed accuracies: CuPL row first, rows by switches on, mean gain."""
    from app.report import ablation_table

    class Configs:
        def __init__(self, by_run):
            self.by_run = by_run

        def run_configs(self, run_id):
            return self.by_run[run_id]

    infos = [{"run_id": "r1", "dataset": "in", "backbone": "/m/B16", "methods": ["cupl", "abs"]},
             {"run_id": "r2", "dataset": "in", "backbone": "/m/B16", "methods": ["abs"]},
             {"run_id": "r3", "dataset": "dtd", "backbone": "/m/B16", "methods": ["cupl", "abs"]},
             {"run_id": "r4", "dataset": "dtd", "backbone": "/m/B16", "methods": ["abs"]}]
    configs = Configs({"r1": {"abs": {"use_raw": True, "use_feature": True, "soft_matching": True}},
                       "r2": {"abs": {"use_raw": True, "use_feature": False, "soft_matching": True}},
                       "r3": {"abs": {"use_raw": True, "use_feature": True, "soft_matching": True}},
                       "r4": {"abs": {"use_raw": True, "use_feature": False, "soft_matching": True}}})
    accuracy = {("r1", "cupl"): (10, 0.60), ("r1", "abs"): (10, 0.70), ("r2", "abs"): (10, 0.65),
                ("r3", "cupl"): (10, 0.50), ("r3", "abs"): (10, 0.55), ("r4", "abs"): (10, 0.40)}
    headers, rows = ablation_table(configs, infos, accuracy)
    assert headers == ["Frs", "Ffs", "Soft-M", "in / B16", "dtd / B16", "Δ vs CuPL (avg.)"]
    assert rows == [["-", "-", "-", "60.00", "50.00", "(baseline)"],
                    ["✓", "-", "✓", "65.00", "40.00", "-2.50"],  # ((65-60) + (40-50)) / 2
                    ["✓", "✓", "✓", "70.00", "55.00", "+7.50"]]  # ((70-60) + (55-50)) / 2
    assert ablation_table(configs, infos[:1] + infos[2:3], accuracy) is None  # one setting: no ablation


def test_sweep_rejects_bad_values_before_compute(shapes, tiny_clip_dir):
    from flows.sweep import sweep

    with pytest.raises(ValueError, match="need 0 < alpha <= beta <= 1"):
        sweep(dataset="shapes", model=str(tiny_clip_dir), method="abs", param="alpha", values=[0.3, 2.0], db=shapes)
    with pytest.raises(ValueError, match="has no field"):
        sweep(dataset="shapes", model=str(tiny_clip_dir), method="wca", param="alpha", values=[0.3], db=shapes)
    with pytest.raises(ValueError, match="no parameters to sweep"):
        sweep(dataset="shapes", model=str(tiny_clip_dir), method="clip", param="n_crops", values=[3], db=shapes)
    with pytest.raises(KeyError, match="unknown preset"):
        sweep(dataset="shapes", model=str(tiny_clip_dir), method="abs", param="preset", values=["abs-paper", "abs-nope"], db=shapes)
    with duckdb.connect(shapes, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM artifacts").fetchone()[0] == 0


@pytest.fixture(scope="module")
def ablation(prefect_server, tmp_path_factory, tiny_clip_dir, tiny_dino_dir):
    """The Table 4 ablation as a sweep over presets, with CuPL and CLIP as baselines, counting
    encoder calls; then its report."""
    import tasks.encode as encode_mod
    from flows.sweep import sweep
    from glocal.data.demo_data import generate_images
    from app.report import build_report
    from tasks.ingest import ingest_folder

    root = tmp_path_factory.mktemp("ablation")
    db = str(root / "w.duckdb")
    ingest_folder(db, "shapes", str(generate_images(root / "shapes")), shard_size=4)
    calls, real = [], encode_mod.encode_images
    encode_mod.encode_images = lambda *a, **k: (calls.append(1), real(*a, **k))[1]
    try:
        common = dict(dataset="shapes", model=str(tiny_clip_dir), attention_model=str(tiny_dino_dir), n_crops=3)
        result = sweep(method="abs", param="preset", values=ABLATION, baselines=["cupl", "clip"], db=db, **common)
        first_calls = len(calls)
        again = sweep(method="abs", param="preset", values=ABLATION, baselines=["cupl", "clip"], db=db, **common)
        rerun_calls = len(calls) - first_calls
    finally:
        encode_mod.encode_images = real
    out = root / "sweep.html"
    summary = build_report(db, list(dict.fromkeys(p["run_id"] for p in result["points"])), out, gallery=2)
    return dict(db=db, root=root, common=common, result=result, again=again, first_calls=first_calls,
                rerun_calls=rerun_calls, report=out, summary=summary)


def test_ablation_sweep_encodes_once_and_matches_fresh_runs(ablation, tmp_path):
    from runs import evaluate
    from glocal.data.demo_data import generate_images
    from tasks.ingest import ingest_folder

    shapes, common, result = ablation["db"], ablation["common"], ablation["result"]
    assert ablation["first_calls"] == 3  # 3 shards, encoded once for all four presets and both baselines
    points = result["points"]
    assert [p["encoded_shards"] for p in points] == [3, 0, 0, 0, 0, 0]
    assert [p["role"] for p in points] == ["point"] * 4 + ["baseline"] * 2
    assert len({p["run_id"] for p in points[:4]}) == 4

    # every reused point scores exactly as a fresh run of that preset in its own workspace
    for preset, point in zip(ABLATION[1:], points[1:4]):
        fresh_db = str(tmp_path / f"fresh-{preset}.duckdb")
        ingest_folder(fresh_db, "shapes", str(generate_images(tmp_path / f"img-{preset}")), shard_size=4)
        fresh = evaluate(methods=["abs"], presets={"abs": preset}, db=fresh_db, **common)
        assert fresh["encoded_shards"] == 3
        assert predictions(fresh_db, fresh["run_id"], "abs") == predictions(shapes, point["run_id"], "abs")
        assert fresh["accuracy"]["abs"] == point["top1"]

    # a rerun skips everything and keeps the run ids
    assert ablation["rerun_calls"] == 0
    assert [p["run_id"] for p in ablation["again"]["points"]] == [p["run_id"] for p in points]

    summary = ablation["summary"]
    assert summary["ablation_rows"] == 5 and summary["sweeps"] == 1 and summary["plots"] == 3  # bars, cost, the sweep
    page = ablation["report"].read_text()
    assert 'class="ablation"' in page and f"Sweep {result['sweep_id']}" in page


@pytest.mark.browser
def test_report_renders_in_headless_chromium(ablation):
    """The report opened from disk in a real browser: every image decoded and laid out, the
    expected rows in every table, and nothing fetched from a network."""
    with headless() as browser:
        browser.get(ablation["report"].resolve().as_uri())
        images = browser.execute_script(IMAGES_JS)
        rows = browser.execute_script(
            "return Object.fromEntries(Array.from(document.querySelectorAll('table')).map("
            "t => [t.className, t.querySelectorAll('tbody tr').length]))")
        fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        cards = browser.execute_script("return Array.from(document.querySelectorAll('figure.card')).map("
                                       "c => Array.from(c.querySelectorAll('img')).map(i => i.alt))")
        browser_headers = browser.execute_script("return Array.from(document.querySelectorAll('table.accuracy th')).map(t => t.textContent)")
        if os.environ.get("GLOCAL_SCREENSHOT"):
            browser.save_screenshot(os.environ["GLOCAL_SCREENSHOT"])
    assert broken_images(images) == [], f"images that did not render: {broken_images(images)}"
    # one gallery for the 4 ABS points (the same images and crops: the sweep's one encode), each card
    # led by its attention map, with the numbered top crops, their windows and every crop on demand;
    # one for the baselines' run (CuPL, CLIP: whole images), which draws no crops and no attention
    assert len(cards) == 2 + 2
    assert cards[:2] == [["attention", "top crops", "feature windows", "all crops"]] * 2, cards
    assert cards[2:] == [["image"]] * 2, cards
    assert [alt for _, _, _, _, alt, _ in images].count("attention colour scale") == 1
    # the columns named by the preset each point used, not by run id alone
    assert all(any(f"preset={preset} (" in h for h in browser_headers) for preset in ABLATION), browser_headers
    assert rows["accuracy"] == 3 and rows["compare"] == 1  # abs, cupl, clip; cupl vs clip in the baselines' run
    assert rows["ablation"] == 5 and rows["sweep"] == 4 + 2
    assert fetched == []


def test_crop_sweep_encodes_each_value_and_shares_attention(shapes, tiny_clip_dir, tiny_dino_dir, capsys):
    from app.cli import main

    code = main(["sweep", "shapes", "--model", str(tiny_clip_dir), "--attention-model", str(tiny_dino_dir), "--n-crops", "3",
                 "--param", "alpha=0.3,0.6", "--baselines", "cupl", "--db", shapes, "--report", shapes + ".html"])
    assert code == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "(baseline)" in out and "wrote" in out
    with duckdb.connect(shapes, read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT key) FROM artifacts WHERE stage = 'attention'").fetchone()[0] == 1
        assert con.execute("SELECT count(DISTINCT key) FROM artifacts WHERE stage = 'encode'").fetchone()[0] == 2
        rows = con.execute("SELECT p.value, p.encoded_shards FROM sweep_points p WHERE role = 'point' ORDER BY position").fetchall()
        assert rows == [("0.3", 3), ("0.6", 3)]
        sweep_id = con.execute("SELECT sweep_id FROM sweeps").fetchone()[0]
    assert main(["report", "--sweep", sweep_id, "--db", shapes, "--out", shapes + "-2.html"]) == 0
    assert "3 plots, 1 sweeps" in capsys.readouterr().out  # the bars, accuracy against compute, the sweep
    # one sweep page, whichever way it is asked for
    assert Path(shapes + "-2.html").read_bytes() == Path(shapes + ".html").read_bytes()
    # the same sweep again (everything stored) as a CSV for a script
    assert main(["sweep", "shapes", "--model", str(tiny_clip_dir), "--attention-model", str(tiny_dino_dir), "--n-crops", "3",
                 "--param", "alpha=0.3,0.6", "--baselines", "cupl", "--db", shapes, "--output", shapes + ".csv"]) == 0
    import csv

    rows = list(csv.DictReader(open(shapes + ".csv")))
    assert [(r["role"], r["alpha"]) for r in rows] == [("point", "0.3"), ("point", "0.6"), ("baseline", "")] and rows[0]["sweep_id"] == sweep_id
