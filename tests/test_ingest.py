"""Ingest from an image folder and from existing webdataset shards (standard jpg/png + cls/json)."""

import io
import json

import pytest
import webdataset as wds
from PIL import Image

from glocal.data.shards import read_shard
from storage import Catalog
from tasks.artifact_formats import shard_path
from tasks.ingest import ingest_folder, is_webdataset


def _jpeg(colour, size=(40, 30)):
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


def _png_grey(size=(20, 50)):
    buf = io.BytesIO()
    Image.new("L", size, 128).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def external_shards(tmp_path):
    """Two shards as other tools write them: keys with slashes, cls or json labels, one sample
    without a label, one corrupt image, one without an image."""
    folder = tmp_path / "wds"
    folder.mkdir()
    with wds.TarWriter(str(folder / "train-000.tar")) as sink:
        sink.write({"__key__": "n01/img_0001", "jpg": _jpeg((255, 0, 0)), "cls": b"0"})
        sink.write({"__key__": "n01/img_0002", "png": _png_grey(), "json": json.dumps({"label": 2}).encode()})
        sink.write({"__key__": "n01/img_0003", "jpg": _jpeg((0, 0, 255)), "txt": b"no label here"})
    with wds.TarWriter(str(folder / "train-001.tar")) as sink:
        sink.write({"__key__": "x0004", "jpg": _jpeg((0, 255, 0))[:100], "cls": b"1"})
        sink.write({"__key__": "x0005", "jpg": _jpeg((0, 255, 0), (7, 5)), "cls": b"1"})
        sink.write({"__key__": "x0006", "txt": b"just text", "cls": b"1"})
    return folder


def test_ingest_existing_webdataset_shards(external_shards, tmp_path):
    db = str(tmp_path / "w.duckdb")
    assert is_webdataset(str(external_shards)) and is_webdataset(str(external_shards / "train-{000..001}.tar"))
    report = ingest_folder(db, "ext", str(external_shards), shard_size=2, classnames=["red", "green", "grey"])
    assert report["images"] == 3 and report["shards"] == 2
    bad = dict(report["bad"])
    assert set(bad) == {"train-000.tar/n01/img_0003", "train-001.tar/x0004", "train-001.tar/x0006"}
    assert "no integer label" in bad["train-000.tar/n01/img_0003"]
    assert "no image entry" in bad["train-001.tar/x0006"] and "txt" in bad["train-001.tar/x0006"]
    catalog = Catalog(db)
    manifest = catalog.manifest("ext")
    assert manifest == [("train-000.tar/n01/img_0001", 0, 0), ("train-000.tar/n01/img_0002", 0, 2), ("train-001.tar/x0005", 1, 1)]
    samples = read_shard(shard_path(catalog.dataset("ext")["shard_dir"], 0))
    assert [(i, label, im.mode, im.size) for i, label, im in samples] == [
        ("train-000.tar/n01/img_0001", 0, "RGB", (40, 30)), ("train-000.tar/n01/img_0002", 2, "RGB", (20, 50))]
    # a brace pattern and a limit give the first samples only; same ids, so the same fingerprint
    again = ingest_folder(db, "ext2", str(external_shards / "train-{000..001}.tar"), shard_size=2, classnames=["red", "green", "grey"], limit=2)
    assert again["images"] == 2 and catalog.manifest("ext2") == manifest[:2]


def test_webdataset_needs_class_names_and_existing_shards(external_shards, tmp_path):
    db = str(tmp_path / "w.duckdb")
    with pytest.raises(ValueError, match="--classnames"):
        ingest_folder(db, "ext", str(external_shards))
    with pytest.raises(FileNotFoundError, match="no tar shards match"):
        ingest_folder(db, "ext", str(tmp_path / "nothing-*.tar"), classnames=["a"])


def test_reingest_with_other_images_changes_the_fingerprint(tmp_path):
    from glocal.data.demo_data import generate_images

    db = str(tmp_path / "w.duckdb")
    root = generate_images(tmp_path / "g", per_class=2)
    ingest_folder(db, "d", str(root), shard_size=4)
    first = Catalog(db).dataset("d")["fingerprint"]
    ingest_folder(db, "d", str(root), shard_size=4)
    assert Catalog(db).dataset("d")["fingerprint"] == first
    ingest_folder(db, "d", str(root), shard_size=4, limit=5)
    assert Catalog(db).dataset("d")["fingerprint"] != first
