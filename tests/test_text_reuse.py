"""Text embeddings are stored per (backbone, text kind, sentences): a run with a new mix of methods
embeds only the kinds the workspace does not hold yet, and predictions do not depend on how the
embeddings were split into files."""

import duckdb
import pytest

pytestmark = pytest.mark.usefixtures("prefect_server")

PREDICTIONS = "SELECT method, image_id, prediction, top5 FROM predictions WHERE run_id = ? ORDER BY method, image_id"


def test_a_new_mix_of_methods_embeds_only_its_new_text_kinds(tmp_path, tiny_clip_dir, monkeypatch):
    import tasks.embed_text as stage
    from glocal.data.demo_data import generate_images
    from runs import evaluate
    from tasks.ingest import ingest_folder

    embedded = []
    real = stage.bank_from_sentences
    monkeypatch.setattr(stage, "bank_from_sentences", lambda backbone, sets: embedded.append(sorted(set(sets) - {"classnames"})) or real(backbone, sets))
    db = str(tmp_path / "ws.duckdb")
    ingest_folder(db, "shapes", str(generate_images(tmp_path / "shapes", per_class=2)), shard_size=6)
    common = dict(dataset="shapes", model=str(tiny_clip_dir), db=db)

    evaluate(methods=["clip", "clip_e"], **common)
    assert sorted(embedded) == [["prompts"], ["templates"]]
    embedded.clear()
    mixed = evaluate(methods=["clip", "cupl", "waffle"], **common)
    assert sorted(embedded) == [["descriptions"], ["waffle"]]  # the prompts reused
    embedded.clear()
    evaluate(methods=["clip_e", "cupl"], **common)
    assert embedded == []  # every kind stored already

    # the same predictions as a workspace that embedded this mix in one go
    fresh = str(tmp_path / "fresh.duckdb")
    ingest_folder(fresh, "shapes", str(tmp_path / "shapes"), shard_size=6)
    alone = evaluate(methods=["clip", "cupl", "waffle"], **{**common, "db": fresh})
    assert alone["run_id"] == mixed["run_id"]
    with duckdb.connect(db, read_only=True) as a, duckdb.connect(fresh, read_only=True) as b:
        assert a.execute(PREDICTIONS, [mixed["run_id"]]).fetchall() == b.execute(PREDICTIONS, [alone["run_id"]]).fetchall()
