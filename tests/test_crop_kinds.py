"""A new crop kind is one module: tests/grid_kind.py registers a kind (a fixed grid of crops, with
its own config) and a method that uses it, and `glocal evaluate` plans, encodes, stores, keys,
reloads and scores it with no change anywhere else."""


import duckdb
import pytest
import torch
from plugins import evaluate_on_shapes, plugin_fixture

pytestmark = pytest.mark.usefixtures("prefect_server")


grid_kind = plugin_fixture("grid_kind")


def test_a_registered_kind_runs_through_glocal_evaluate(grid_kind, tmp_path, tiny_clip_dir):
    import pyarrow.parquet as pq

    from app.cli import main
    from storage import Catalog

    db = evaluate_on_shapes(tmp_path, tiny_clip_dir, "clip,grid_mean")
    argv = ["evaluate", "shapes", "--model", str(tiny_clip_dir), "--methods", "clip,grid_mean", "--db", db]
    catalog = Catalog(db)
    with duckdb.connect(db, read_only=True) as con:
        rows = con.execute("SELECT method, count(*) FROM predictions GROUP BY method ORDER BY method").fetchall()
        encode_key = con.execute("SELECT encode_key FROM runs").fetchone()[0]
    assert rows == [("clip", 12), ("grid_mean", 12)]
    # stored: the grid's features and its boxes, 3 x 3 equal cells of each image, by hand
    sizes = {image_id: (w, h) for image_id, w, h in catalog.query("SELECT image_id, width, height FROM images")[1]}
    for path in catalog.artifact_paths("encode", encode_key).values():
        table = pq.read_table(path).to_pydict()
        assert "grid" in table and "grid_boxes" in table
        for image_id, boxes in zip(table["image_id"], table["grid_boxes"]):
            w, h = sizes[image_id]
            expected = [[w * c // 3, h * r // 3, w * (c + 1) // 3, h * (r + 1) // 3] for r in range(3) for c in range(3)]
            assert torch.tensor(boxes).reshape(9, 4).tolist() == expected
    # the kind's config keys its features: a rerun encodes nothing, another grid encodes again
    assert main(argv) == 0
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT key) FROM artifacts WHERE stage = 'encode'").fetchone()[0] == 1
    from runs import evaluate

    two = evaluate(dataset="shapes", db=db, model=str(tiny_clip_dir), methods=["grid_mean"], overrides={"grid_mean": {"cells": 2}})
    assert two["encoded_shards"] == 3
    path = catalog.artifact_paths("encode", two["encode_key"])[0]
    assert len(pq.read_table(path).to_pydict()["grid_boxes"][0]) == 2 * 2 * 4


def test_engine_and_reference_agree_on_a_registered_kind(grid_kind, tiny_clip):
    """The batched engine and the reference extractor encode the same boxes to the same features,
    and the method's scores are the mean of the crops' cosines computed by hand."""
    from PIL import Image

    from glocal.encode.engine import PIXEL_TOLERANCE, encode_features
    from glocal.encode.extract import extract_features
    from glocal.methods import get_method
    from glocal.text.bank import TextBank

    images = [Image.new("RGB", (60 + 7 * k, 45), (40 * k, 200 - 30 * k, 90)) for k in range(3)]
    ids = [f"i{k}" for k in range(3)]
    config = grid_kind.GridConfig(cells=2)
    fast, fast_record = encode_features(tiny_clip, images, ids, {"full", "grid"}, **{"kind:grid": config})
    ref, ref_record = extract_features(tiny_clip, images, ids, {"full", "grid"}, **{"kind:grid": config})
    assert [b.tolist() for b in fast_record.boxes["grid_boxes"]] == [b.tolist() for b in ref_record.boxes["grid_boxes"]]
    assert fast.need("grid").shape == (3, 4, tiny_clip.embed_dim)
    assert torch.allclose(fast.need("grid"), ref.need("grid"), atol=PIXEL_TOLERANCE * 10 + 1e-3)
    prompts = torch.nn.functional.normalize(torch.randn(5, tiny_clip.embed_dim, generator=torch.Generator().manual_seed(0)), dim=-1)
    scores = get_method("grid_mean").score(ref, TextBank(classnames=list("abcde"), prompts=prompts), config)
    by_hand = [[sum(float(ref.need("grid")[b, k] @ prompts[c]) for k in range(4)) / 4 for c in range(5)] for b in range(3)]
    assert torch.allclose(scores, torch.tensor(by_hand), atol=1e-5)


def test_a_kind_s_version_keys_its_features(grid_kind):
    """A kind whose author changes its plan raises its version: the features' key changes with it."""
    import dataclasses

    from glocal.kinds.registry import CROP_KINDS
    from glocal.run.plan import feature_parts

    configs = {"kind:grid": grid_kind.GridConfig()}
    before = feature_parts(configs, {"full", "grid"}, ("d", "fp", "m"), None, None)
    CROP_KINDS["grid"] = dataclasses.replace(CROP_KINDS["grid"], version=2)
    after = feature_parts(configs, {"full", "grid"}, ("d", "fp", "m"), None, None)
    assert after["full"] == before["full"] and after["grid"] != before["grid"]


def test_a_kind_name_that_a_stored_column_uses_is_refused():
    from glocal.kinds.registry import register_crop_kind

    for name in ("raw", "windows", "grid_boxes", "lgca_2", "not a name"):
        with pytest.raises(ValueError, match="taken or not a plain identifier"):
            register_crop_kind(name)(lambda w, h, c, i: torch.zeros(1, 4))
