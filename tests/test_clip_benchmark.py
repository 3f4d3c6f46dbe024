"""CLIP_benchmark's world (#28 items 4 and 6): its webdataset folder layout ingested with its own
class names and templates, its class-name / template file formats, and its result files."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glocal.text.files import load_classnames, load_templates

CLASSES = ["circle", "square", "triangle"]
TEMPLATES = ["a sketch of a {c}.", "itap of a {c}."]


def write_wds_folder(root: Path, per_shard=(4, 2)) -> Path:
    """A miniature wds_<name> folder: test/0.tar, test/1.tar (webp + cls), nshards.txt,
    classnames.txt and zeroshot_classification_templates.txt, as clip_benchmark_export_wds writes."""
    import webdataset as wds

    (root / "test").mkdir(parents=True)
    rng = np.random.default_rng(0)
    n = 0
    for shard, count in enumerate(per_shard):
        with wds.TarWriter(str(root / "test" / f"{shard}.tar")) as sink:
            for _ in range(count):
                buffer = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(buffer, "WEBP")
                sink.write({"__key__": f"s{n:04d}", "webp": buffer.getvalue(), "cls": str(n % 3).encode()})
                n += 1
    (root / "test" / "nshards.txt").write_text(f"{len(per_shard)}\n")
    (root / "classnames.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "zeroshot_classification_templates.txt").write_text("\n".join(TEMPLATES) + "\n")
    return root


def test_class_name_and_template_files_in_clip_benchmarks_formats(tmp_path):
    lines = tmp_path / "classnames.txt"
    lines.write_text("cat\n  dog \n\nbird\n")
    assert load_classnames(lines) == ["cat", "dog", "bird"]
    keyed = tmp_path / "custom_classnames.json"  # --custom_classname_file: dataset -> names
    keyed.write_text(json.dumps({"cifar10": ["a", "b"], "shapes": ["x", "y", "z"]}))
    assert load_classnames(keyed, "shapes") == ["x", "y", "z"]
    with pytest.raises(ValueError, match="needs an entry for 'pets' .*has: cifar10, shapes"):
        load_classnames(keyed, "pets")
    templates = tmp_path / "templates.json"
    templates.write_text(json.dumps({"shapes": ["a photo of a {c}.", "a {} drawing."]}))
    assert load_templates(templates, "shapes") == ["a photo of a {}.", "a {} drawing."]
    text = tmp_path / "zeroshot_classification_templates.txt"
    text.write_text("a photo of a {c}.\nno class here\n")
    with pytest.raises(ValueError, match="exactly one '{}' or '{c}' .*no class here"):
        load_templates(text)


def test_a_folder_whose_nshards_names_a_missing_shard_is_refused(tmp_path):
    from glocal.data.clip_benchmark import read_clip_benchmark_folder

    folder = write_wds_folder(tmp_path / "wds_shapes")
    (folder / "test" / "nshards.txt").write_text("3")
    with pytest.raises(FileNotFoundError, match="nshards.txt says 3 shards but 2.tar is missing"):
        read_clip_benchmark_folder(folder)


@pytest.mark.usefixtures("prefect_server")
def test_one_eval_on_a_clip_benchmark_folder_uses_its_names_and_templates_and_writes_its_result_files(tmp_path, tiny_clip_dir, capsys):
    from app.cli import main
    from storage import Catalog

    folder = write_wds_folder(tmp_path / "wds_shapes")
    db, out = str(tmp_path / "ws" / "glocal.duckdb"), tmp_path / "results"
    assert main(["eval", str(folder), "--model", str(tiny_clip_dir), "--methods", "clip,clip_e", "--db", db,
                 "--format", "clip_benchmark", "--output", str(out)]) == 0
    assert "ingested 6 images" in capsys.readouterr().err
    catalog = Catalog(db)
    info = catalog.dataset("wds_shapes")
    assert info["classnames"] == CLASSES and info["templates"] == ["a sketch of a {}.", "itap of a {}."]
    # CLIP-E's sentences are the folder's templates filled with its class names
    _, rows, _ = catalog.query("SELECT run_id, text_key FROM runs")
    (run_id, text_key), = rows
    sentences = json.loads((catalog.artifact_root / "sentences" / f"{text_key}.json").read_text())
    assert sentences["templates"] == [[t.replace("{c}", c) for t in TEMPLATES] for c in CLASSES]
    # one file per (dataset, model, method), CLIP_benchmark's schema field for field, metrics as fractions
    files = sorted(out.glob("*.json"))
    assert len(files) == 2
    _, accuracy, _ = catalog.query(f"SELECT method, top1_pct, top5_pct, mean_per_class_recall_pct FROM accuracy WHERE run_id = '{run_id}'")
    expected = {m: (t1, t5, r) for m, t1, t5, r in accuracy}
    from glocal.backbones.identity import model_identity

    for path in files:
        record = json.loads(path.read_text())
        assert {"dataset", "model", "pretrained", "task", "metrics", "language"} <= set(record)
        assert set(record["metrics"]) == {"acc1", "acc5", "mean_per_class_recall"}
        assert record["task"] == "zeroshot_classification" and record["language"] == "en" and record["dataset"] == "wds_shapes"
        method = record["method"]
        assert record["model"] == f"{tiny_clip_dir} {method}" and record["pretrained"] == model_identity(str(tiny_clip_dir))
        t1, t5, recall = expected[method]
        assert record["metrics"]["acc1"] == pytest.approx(t1 / 100) and record["metrics"]["acc5"] == pytest.approx(t5 / 100)
        assert record["metrics"]["mean_per_class_recall"] == pytest.approx(recall / 100)
        assert path.name == f"wds_shapes_{str(tiny_clip_dir).strip('/').replace('/', '_')}_{method}_en_zeroshot_classification.json"
    # `clip_benchmark build` names a row by model + " " + pretrained: the two methods do not collide
    assert len({json.loads(p.read_text())["model"] for p in files}) == 2
    # the same records exported from the stored runs
    assert main(["runs", "--db", db, "--format", "clip_benchmark", "--output", str(tmp_path / "export")]) == 0
    exported = {p.name: json.loads(p.read_text()) for p in (tmp_path / "export").glob("*.json")}
    assert exported == {p.name: json.loads(p.read_text()) for p in files}
    # a file where the folder should be: refused before any work
    (tmp_path / "taken").write_text("x")
    assert main(["runs", "--db", db, "--format", "clip_benchmark", "--output", str(tmp_path / "taken")]) == 2
