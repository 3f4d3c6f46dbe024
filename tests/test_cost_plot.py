"""The report's accuracy-against-compute plot (#30): the Pareto front by hand, and in headless
Chromium on a run of every method plus a two-value sweep: a point per (run, method) at its stored
GFLOP and top-1 on a log axis, the front through the points the stored numbers put on it, the sweep
joined, the axis labels."""

import math

import pytest

from glocal.results.cost_plot import CostPoint, pareto_front


def point(method, gflop, top1):
    return CostPoint("r", method, "run", gflop, top1)


def test_the_front_by_hand():
    points = [point("a", 1.0, 10.0), point("b", 2.0, 5.0), point("c", 4.0, 30.0), point("d", 4.0, 20.0), point("e", 8.0, 30.0),
              point("f", 0.5, 10.0)]
    # f is cheapest; a is no more accurate than f (dominated); b dominated; c beats d at the same cost; e costs more for the same
    assert [points[i].method for i in pareto_front(points)] == ["f", "c"]
    assert pareto_front([point("x", 3.0, 0.0)]) == [0]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.usefixtures("prefect_server")
def test_the_cost_plot_in_the_browser(tmp_path, tiny_clip_dir, tiny_dino_dir):
    from browser import headless
    from runs import evaluate

    from app.report import build_report
    from flows.sweep import sweep
    from glocal.data.demo_data import generate_images
    from glocal.methods import method_names
    from storage import Catalog
    from tasks.ingest import ingest_folder

    db = str(tmp_path / "w.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "images", per_class=2)), shard_size=6)
    common = dict(dataset="shapes", model=str(tiny_clip_dir), attention_model=str(tiny_dino_dir), db=db)
    run = evaluate(methods=method_names(), n_crops=3, **common)
    swept = sweep(method="abs", param="n_crops", values=[2, 4], **common)
    run_ids = [run["run_id"]] + [p["run_id"] for p in swept["points"]]
    out = tmp_path / "report.html"
    build_report(db, run_ids, out, gallery=1)

    catalog = Catalog(db)
    costs = catalog.costs()
    stored = {(r, m): (costs[(r, m)]["gflop_per_image"], 100 * top1) for r, _, _, m, _, top1 in catalog.accuracy() if r in run_ids}
    expected_front = pareto_front([CostPoint(r, m, "", g, t) for (r, m), (g, t) in stored.items()])
    keys = list(stored)

    with headless() as browser:
        browser.get(out.resolve().as_uri())
        circles = browser.execute_script(
            "return Array.from(document.querySelectorAll('svg.cost-plot circle.point')).map(c => [c.dataset.run, c.dataset.method,"
            " +c.dataset.gflop, +c.dataset.top1, c.classList.contains('on-front'), +c.getAttribute('cx'), c.getBoundingClientRect().width])")
        front = browser.execute_script("return document.querySelector('svg.cost-plot polyline.front').getAttribute('points')")
        sweep_line = browser.execute_script("return Array.from(document.querySelectorAll('svg.cost-plot polyline.sweep')).map(p => p.getAttribute('points'))")
        labels = browser.execute_script("return [document.querySelector('svg.cost-plot .x-label').textContent,"
                                        " document.querySelector('svg.cost-plot .y-label').textContent]")
    assert len(circles) == len(stored) == len(method_names()) + 2  # every method of the run, and the sweep's two points
    for run_id, method, gflop, top1, on_front, cx, shown in circles:
        assert gflop == pytest.approx(stored[(run_id, method)][0], rel=1e-5) and top1 == pytest.approx(stored[(run_id, method)][1], abs=1e-3)
        assert shown > 0  # drawn on the page
    assert sorted((r, m) for r, m, *_, on_front, _, _ in circles if on_front) == sorted(keys[i] for i in expected_front)
    assert len(front.split()) == len(expected_front)
    # a log axis: x grows with log10(GFLOP), one slope for every point
    by_cost = sorted(circles, key=lambda c: c[2])
    cheap, dear = by_cost[0], by_cost[-1]
    slope = (dear[5] - cheap[5]) / (math.log10(dear[2]) - math.log10(cheap[2]))
    assert all(c[5] == pytest.approx(cheap[5] + slope * (math.log10(c[2]) - math.log10(cheap[2])), abs=0.2) for c in circles)
    assert len(sweep_line) == 1 and len(sweep_line[0].split()) == 2
    assert labels == ["GFLOP per image (log scale)", "top-1 accuracy (%)"]
