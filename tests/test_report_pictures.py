"""The report's pictures, checked against hand-computed values: the heatmap's colours, which crops
are drawn, the accuracy axes, bars for categorical sweeps."""

import matplotlib
import numpy as np
import pytest
from PIL import Image

from glocal.results.plots import HEAT_MAP, accuracy_limit


def test_attention_heatmap_is_colour_mapped_over_a_grey_photo():
    """Pixel = 0.4 grey + 0.6 colour map(attention): the hot cell shows the map's top colour
    (bright yellow), the cold ones its bottom (near black), whatever the photo's colour — a red
    subject included, where a red overlay was invisible."""
    from app.report import attention_picture

    photo = Image.new("RGB", (224, 224), (200, 30, 30))  # a red subject
    attention = np.zeros((2, 2), dtype=np.float32)
    attention[0, 0] = 1.0
    picture = np.asarray(attention_picture(photo, attention), dtype=np.float64)
    grey = np.asarray(photo.convert("L"), dtype=np.float64)[0, 0] / 255
    cmap = matplotlib.colormaps[HEAT_MAP]
    hot = 255 * (0.4 * grey + 0.6 * np.asarray(cmap(1.0)[:3]))
    cold = 255 * (0.4 * grey + 0.6 * np.asarray(cmap(0.0)[:3]))
    assert np.abs(picture[5, 5] - hot).max() <= 2 and np.abs(picture[218, 218] - cold).max() <= 2


def test_top_crops_are_the_distinct_boxes_with_the_most_attended_centres():
    from app.report import top_crops

    attention = np.array([[0.1, 0.9], [0.5, 0.2]], dtype=np.float32)  # (row, col): top-right hottest, then bottom-left
    boxes = np.array([[0, 0, 40, 40],      # centre (20, 20): cell (0, 0) = 0.1
                      [60, 0, 100, 40],    # centre (80, 20): cell (0, 1) = 0.9
                      [60, 0, 100, 40],    # the same box drawn again (centres are drawn with replacement)
                      [0, 60, 40, 100],    # centre (20, 80): cell (1, 0) = 0.5
                      [60, 60, 100, 100]])  # centre (80, 80): cell (1, 1) = 0.2
    assert top_crops(boxes, attention, 100, 100, k=3) == [1, 3, 4]
    assert top_crops(boxes, None, 100, 100, k=3) == [0, 1, 3]


@pytest.mark.parametrize("values, top", [([0.0, 0.0], 1.0), ([2.0, 4.0], 4.6), ([49.0], 56.35), ([50.0, 10.0], 100.0), ([93.0], 100.0)])
def test_accuracy_axis_starts_at_zero_and_ends_at_100_or_near_the_data(values, top):
    assert accuracy_limit(values) == pytest.approx(top)


def test_categorical_sweeps_are_bars_numeric_ones_lines(monkeypatch):
    import matplotlib.pyplot as plt

    import glocal.results.plots as plots

    drawn = []
    real = plt.subplots

    def spy(*args, **kwargs):
        figure, axes = real(*args, **kwargs)
        drawn.append(axes)
        return figure, axes

    monkeypatch.setattr(plots.plt, "subplots", spy)
    plots.sweep_plot("preset", "abs", ["abs-paper", "abs-frs-only"], [0.3, 0.2], {"cupl": 0.25}, "t")
    plots.sweep_plot("alpha", "abs", [0.3, 0.6], [0.3, 0.2], {}, "t")
    categorical, numeric = drawn
    assert len(categorical.patches) == 2 and categorical.get_ylim()[0] == 0
    assert len(numeric.patches) == 0 and len(numeric.lines) == 1 and numeric.get_ylim() == (0, pytest.approx(34.5))


def test_an_all_zero_run_is_said_in_words_and_a_run_without_attention_shows_no_colour_scale(tmp_path):
    """Tiny random models can score 0 % everywhere: the bars then have no height, and the page
    says why instead of showing an empty frame; no attention map is drawn, so no colour scale."""
    from app.report import build_report
    from storage import Catalog
    from storage.workspace import insert_rows

    catalog = Catalog(tmp_path / "ws.duckdb")
    with catalog.connect() as con:
        con.execute("INSERT INTO datasets (dataset, root, classnames, shards, shard_dir) VALUES ('d', '.', '[\"a\", \"b\"]', 1, 'shards')")
        con.execute("INSERT INTO runs (run_id, dataset, backbone, attention, methods, configs, text_key, status, params) "
                    "VALUES ('r1', 'd', 'b', 'None', '[\"clip\", \"cupl\"]', '{}', 't', 'done', '{}')")
        insert_rows(con, "accuracy", ("run_id", "method", "preset_hash", "images", "top1_pct"), [("r1", "clip", "h", 4, 0.0), ("r1", "cupl", "h", 4, 0.0)])
    out = tmp_path / "report.html"
    build_report(str(catalog.path), ["r1"], out)
    page = out.read_text()
    assert "Every method scored 0 %" in page and 'alt="accuracy per method"' in page
    assert "attention colour scale" not in page
    with catalog.connect() as con:
        con.execute("UPDATE accuracy SET top1_pct = 25.0 WHERE method = 'clip'")
    build_report(str(catalog.path), ["r1"], out)
    assert "Every method scored 0 %" not in out.read_text()
