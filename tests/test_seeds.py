"""Mean ± std over seeds (#30): a seed sweep of ABS prints its mean and std over three seeds,
equal to a hand computation from the three runs' stored accuracies; `glocal runs` shows the same
row; `evaluate --seeds` says which methods have no random draw instead of a zero std."""

import json
import math

import pytest

from glocal.results.seeds import NO_DRAW, parse_seeds, summarise


def test_summary_by_hand_and_bad_seeds():
    rows = summarise([1, 2, 3], [{"abs": 10.0, "clip": 5.0}, {"abs": 20.0, "clip": 5.0}, {"abs": 60.0, "clip": 5.0}],
                     {"abs": True, "clip": False})
    assert rows[0][:4] == ("abs", 3, 30.0, round(math.sqrt(((10 - 30) ** 2 + (20 - 30) ** 2 + (60 - 30) ** 2) / 3), 4))  # population std
    assert rows[1][:4] == ("clip", 3, 5.0, None) and rows[1][5] == NO_DRAW
    assert parse_seeds("1, 2,3") == [1, 2, 3]
    for bad in ("1", "1,1", "a,b"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_seed_sweep_of_abs_prints_mean_and_std_of_its_stored_runs(tmp_path, tiny_clip_dir, tiny_dino_dir):
    from app.cli import main
    from glocal.data.demo_data import generate_images
    from storage import Catalog
    from tasks.ingest import ingest_folder

    db = str(tmp_path / "w.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "images", per_class=3)), shard_size=9)
    common = ["--model", str(tiny_clip_dir), "--attention-model", str(tiny_dino_dir), "--n-crops", "3", "--db", db]
    out = tmp_path / "sweep.json"
    assert main(["sweep", "shapes", "--method", "abs", "--param", "seed=1,2,3", *common, "--output", str(out)]) == 0
    rows = json.loads(out.read_text())
    points = [r for r in rows if r["role"] == "point"]
    stored = {run: top1 for run, top1 in Catalog(db).query(
        "SELECT run_id, top1_pct FROM accuracy WHERE method = 'abs'")[1]}
    values = [stored[p["run_id"]] for p in points]
    assert len(set(p["run_id"] for p in points)) == 3 and len(set(values)) > 1  # three runs, and the seed changed something
    mean = sum(values) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)
    summary = rows[-1]
    assert summary["role"] == "over seeds" and summary["top1_pct"] == pytest.approx(mean, abs=1e-3)
    assert summary["top1_pct_std"] == pytest.approx(std, abs=1e-3)
    # `glocal runs` groups the three runs (written to files: no capsys around flow runs, see test_cost)
    assert main(["runs", "--format", "json", "--output", str(tmp_path / "runs.json"), "--db", db]) == 0
    seeds_row = [r for r in json.loads((tmp_path / "runs.json").read_text()) if r["run_id"].startswith("seeds:")]
    assert len(seeds_row) == 1 and seeds_row[0]["setting"].startswith("seed=1,2,3")
    assert seeds_row[0]["top1_pct"] == pytest.approx(mean, abs=1e-3) and seeds_row[0]["top1_pct_std"] == pytest.approx(std, abs=1e-3)

    # the report of the sweep says it too
    from app.report import build_report

    build_report(db, [p["run_id"] for p in points], tmp_path / "report.html", gallery=0)
    page = (tmp_path / "report.html").read_text()
    assert f"abs over 3 seeds: top-1 {mean:.2f} ± {std:.2f} %" in page
    assert '<table class="seeds">' in page and f"<td>{mean:.2f}</td><td>{std:.2f}</td>" in page  # the over-seeds table

    # evaluate --seeds: methods without a random draw say so
    out = tmp_path / "eval.json"
    folder = tmp_path / "images"
    assert main(["eval", str(folder), "--methods", "clip,wca", "--seeds", "1,2", *common, "--output", str(out)]) == 0
    over = {r["method"]: r for r in json.loads(out.read_text())["seeds"]["results"]}
    assert over["clip"]["note"] == NO_DRAW and over["clip"]["top1_pct_std"] is None
    assert over["wca"]["note"] is None and over["wca"]["seeds"] == 2 and over["wca"]["top1_pct_std"] is not None
