"""CLIP_benchmark's metrics beside top-1: acc5 and mean per-class recall (the main metric of Pets,
Caltech-101, Aircraft and Flowers), in per cent, for every method and, for a method with draws
(WCA's official form), the mean over its draws; computed here by hand from the stored rows on a
dataset whose classes have unequal sizes (where mean per-class recall and top-1 differ)."""

import json

import duckdb
import pytest

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_top5_and_mean_per_class_recall_are_stored_shown_and_written(tmp_path, tiny_clip_dir, capsys):
    from app.cli import main
    from glocal.data.demo_data import generate_images

    folder = generate_images(tmp_path / "shapes", per_class=4)
    extra = sorted((folder / "red circle").iterdir())
    for path in extra[1:]:  # classes of 1, 4 and 4 images
        path.unlink()
    db = str(tmp_path / "ws.duckdb")
    out = tmp_path / "r.json"
    assert main(["eval", str(folder), "--model", str(tiny_clip_dir), "--methods", "clip,wca", "--preset", "wca=wca-official",
                 "--n-crops", "3", "--output", str(out), "--db", db]) == 0
    result = json.loads(out.read_text())
    with duckdb.connect(db, read_only=True) as con:
        rows = con.execute("SELECT method, label, top5, correct, draw_predictions FROM predictions WHERE run_id = ?", [result["run_id"]]).fetchall()

    def recall(hits: list[tuple[int, bool]]) -> float:  # (label, right) -> mean over classes of the share right
        labels = sorted({label for label, _ in hits})
        return 100 * sum(sum(right for l, right in hits if l == label) / sum(1 for l, _ in hits if l == label) for label in labels) / len(labels)

    for shown in result["results"]:
        mine = [r for r in rows if r[0] == shown["method"]]
        top5 = 100 * sum(label in top5 for _, label, top5, _, _ in mine) / len(mine)
        if shown["method"] == "wca":  # 20 draws: the mean of each draw's recall
            expected = sum(recall([(label, drawn[d] == label) for _, label, _, _, drawn in mine]) for d in range(20)) / 20
        else:
            expected = recall([(label, correct) for _, label, _, correct, _ in mine])
        assert shown["top5_pct"] == pytest.approx(top5, abs=1e-4) and shown["mean_per_class_recall_pct"] == pytest.approx(expected, abs=1e-4)
    capsys.readouterr()
    assert main(["runs", "--format", "json", "--db", db]) == 0
    listed = {r["method"]: r for r in json.loads(capsys.readouterr().out)}
    for shown in result["results"]:
        assert listed[shown["method"]]["top5_pct"] == pytest.approx(shown["top5_pct"], abs=0.01)
        assert listed[shown["method"]]["mean_per_class_recall_pct"] == pytest.approx(shown["mean_per_class_recall_pct"], abs=0.01)
    # compare shows both sides' top-5 and recall
    capsys.readouterr()
    assert main(["compare", f"{result['run_id']}:clip", f"{result['run_id']}:wca", "--format", "json", "--db", db]) == 0
    (paired,) = json.loads(capsys.readouterr().out)
    by = {r["method"]: r for r in result["results"]}
    assert paired["top5_a_pct"] == pytest.approx(by["clip"]["top5_pct"], abs=1e-4)
    assert paired["mean_per_class_recall_b_pct"] == pytest.approx(by["wca"]["mean_per_class_recall_pct"], abs=1e-4)
    # the report has a table of each, with the values eval wrote
    from app.report import build_report

    page = tmp_path / "report.html"
    build_report(db, [result["run_id"]], page, gallery=0)
    text = page.read_text()
    for title, field in (("Top-5 accuracy (%)", "top5_pct"), ("Mean per-class recall (%)", "mean_per_class_recall_pct")):
        section = text.split(f"<h2>{title}</h2>", 1)[1].split("</table>", 1)[0]
        for shown in result["results"]:
            assert f"<td>{shown['method']}</td><td>{shown[field]:.2f}</td>" in section.replace("\n", ""), (title, section[:300])


def test_a_workspace_of_an_older_glocal_is_upgraded_by_a_read_only_command(tmp_path, capsys):
    """`glocal runs` on a workspace whose accuracy is still in fractions (`top1`): upgraded in place
    once (per cent, renamed, the new metric columns empty), then read."""
    import storage.schema as schema
    from app.cli import main

    db = str(tmp_path / "old.duckdb")
    with duckdb.connect(db) as con:
        con.execute(schema.SCHEMA)
        for statement in schema.MIGRATIONS[:schema.MIGRATIONS.index(next(m for m in schema.MIGRATIONS if callable(m)))]:
            con.execute(statement)
        con.execute("CREATE TABLE glocal_schema (version INTEGER)")
        con.execute("INSERT INTO glocal_schema VALUES (2)")
        con.execute("INSERT INTO runs (run_id, dataset, backbone, attention, methods, configs, text_key, status) "
                    "VALUES ('r1', 'd', 'b', 'None', '[\"clip\"]', '{}', 't', 'done')")
        con.execute("INSERT INTO accuracy (run_id, method, preset_hash, images, top1, top1_std) VALUES ('r1', 'clip', 'h', 8, 0.375, NULL)")
    assert main(["runs", "--format", "json", "--db", db]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["top1_pct"] == 37.5 and row["top5_pct"] is None and row["mean_per_class_recall_pct"] is None
    assert main(["runs", "--format", "json", "--db", db]) == 0  # once: the second read finds it current
    assert json.loads(capsys.readouterr().out)[0]["top1_pct"] == 37.5
