"""The report's accuracy-against-compute plot (#30): the Pareto front by hand (the plot itself is
checked in headless Chromium by tests/test_pipeline.py's report test, on a run of every method
and a two-value sweep)."""

from glocal.results.cost_plot import CostPoint, pareto_front


def point(method, gflop, top1):
    return CostPoint("r", method, "run", gflop, top1)


def test_the_front_by_hand():
    points = [point("a", 1.0, 10.0), point("b", 2.0, 5.0), point("c", 4.0, 30.0), point("d", 4.0, 20.0), point("e", 8.0, 30.0),
              point("f", 0.5, 10.0)]
    # f is cheapest; a is no more accurate than f (dominated); b dominated; c beats d at the same cost; e costs more for the same
    assert [points[i].method for i in pareto_front(points)] == ["f", "c"]
    assert pareto_front([point("x", 3.0, 0.0)]) == [0]
