"""A new text kind is one module: tests/colour_kind.py registers a kind of sentence set and a
method that reads it, and `glocal evaluate` builds, embeds, stores, reloads and scores it with no
change anywhere else."""

import json

import duckdb
import pytest
from plugins import evaluate_on_shapes, plugin_fixture

pytestmark = pytest.mark.usefixtures("prefect_server")


colour_kind = plugin_fixture("colour_kind")


def test_a_registered_text_kind_runs_through_glocal_evaluate(colour_kind, tmp_path, tiny_clip_dir):
    from glocal.backbones.identity import model_identity
    from glocal.run.plan import RunPlan
    from storage import Catalog
    from tasks.artifact_formats import read_features, text_bank_from_files

    db = evaluate_on_shapes(tmp_path, tiny_clip_dir, "clip,colour_mean")
    catalog = Catalog(db)
    with duckdb.connect(db, read_only=True) as con:
        run_id, text_key, encode_key = con.execute("SELECT run_id, text_key, encode_key FROM runs").fetchone()
        predicted = dict(con.execute("SELECT image_id, prediction FROM predictions WHERE method = 'colour_mean'").fetchall())
    classnames = catalog.dataset("shapes")["classnames"]
    sentences = json.loads(next((tmp_path / "artifacts" / "sentences").glob(f"{text_key}.json")).read_text())
    assert sentences["colour_prompts"] == [[f"a red photo of a {c}.", f"a blue photo of a {c}."] for c in classnames]
    files = [str(p) for key in RunPlan.text_kind_keys(model_identity(str(tiny_clip_dir)), sentences).values()
             for p in catalog.artifact_paths("text", key).values()]
    bank = text_bank_from_files(files, classnames)
    colour = bank.need("colour_prompts")
    assert colour.emb.shape[:2] == (len(classnames), 2) and bool(colour.mask.all())
    # every stored prediction is the argmax of the mean cosine over the two stored prompt embeddings, by hand
    for path in catalog.artifact_paths("encode", encode_key).values():
        ids, features = read_features(str(path), bank.dim)
        for image_id, f in zip(ids, features.full):
            by_hand = [(float(f @ colour.emb[c, 0]) + float(f @ colour.emb[c, 1])) / 2 for c in range(len(classnames))]
            assert predicted[image_id] == max(range(len(classnames)), key=by_hand.__getitem__)
    assert len(predicted) == 12 and run_id


def test_a_text_kind_name_that_is_taken_is_refused():
    from glocal.text.kinds import register_text_kind

    for name in ("prompts", "waffle", "classnames", "two words"):
        with pytest.raises(ValueError, match="taken or not a plain identifier"):
            register_text_kind(name)(lambda classnames, texts: [["x"]] * len(classnames))
