"""Benchmark dataset readers on miniature copies of each on-disk layout."""

import json

import pytest
import torch

from glocal.data.datasets import LAYOUTS, LayoutError, find_dataset_folder, read_benchmark
from glocal.run.scoring import restrict_classes
from glocal.data.miniature import build, build_flat_imagenet

TEXT_DATASET = {"imagenet": "imagenet", "imagenet_v2": "imagenet", "imagenet_sketch": "imagenet", "imagenet_r": "imagenet",
                "imagenet_a": "imagenet", "cub": "cub", "pets": "pets", "dtd": "dtd", "food101": "food101", "places365": "places365"}


def test_every_paper_dataset_has_a_layout():
    assert set(LAYOUTS) == set(TEXT_DATASET)


@pytest.mark.parametrize("dataset", sorted(TEXT_DATASET))
def test_reader_labels_and_class_order(dataset, shared, tmp_path):
    folder = tmp_path / LAYOUTS[dataset].folders[0]
    expected = build(dataset, folder, shared)
    assert find_dataset_folder(tmp_path, dataset) == folder
    bench = read_benchmark(dataset, folder)
    assert {r.image_id: r.label for r in bench.records} == expected
    assert all(r.path.is_file() for r in bench.records)
    names = json.loads((shared / "classnames" / f"{TEXT_DATASET[dataset]}.json").read_text())
    assert bench.classnames == names
    assert bench.text_dataset == TEXT_DATASET[dataset]
    if dataset in ("imagenet_r", "imagenet_a"):
        subset = json.loads((shared / "classnames" / "imagenet_subsets.json").read_text())[dataset]
        assert bench.class_subset == subset
        # the subset's own name list agrees with the ImageNet names at those indices (class order)
        subset_names = json.loads((shared / "classnames" / f"{dataset}.json").read_text())
        assert sum(names[i] == n for i, n in zip(subset, subset_names)) >= 190
    else:
        assert bench.class_subset is None


def test_known_class_names_land_on_their_labels(shared, tmp_path):
    cub = read_benchmark("cub", _built("cub", tmp_path, shared))
    assert {cub.classnames[r.label] for r in cub.records} == {"Black-footed Albatross", "Laysan Albatross", "Common Yellowthroat"}
    dtd = read_benchmark("dtd", _built("dtd", tmp_path, shared))
    assert [dtd.classnames[r.label] for r in dtd.records] == ["banded", "polka-dotted", "zigzagged"]
    food = read_benchmark("food101", _built("food101", tmp_path, shared))
    assert [food.classnames[r.label] for r in food.records] == ["apple pie", "baby back ribs", "waffles"]


def _built(dataset, tmp_path, shared):
    folder = tmp_path / dataset
    build(dataset, folder, shared)
    return folder


@pytest.mark.parametrize("form", ["loc", "val_txt"])
def test_flat_imagenet_val(form, shared, tmp_path):
    expected = build_flat_imagenet(tmp_path, shared, form)
    bench = read_benchmark("imagenet", tmp_path / "val")
    assert {r.image_id: r.label for r in bench.records} == expected


def test_flat_imagenet_without_labels_names_the_devkit_problem(shared, tmp_path):
    build_flat_imagenet(tmp_path, shared, "loc")
    (tmp_path / "LOC_val_solution.csv").unlink()
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("490\n361\n")
    with pytest.raises(LayoutError, match="meta.mat.*val.txt"):
        read_benchmark("imagenet", tmp_path / "val")


@pytest.mark.parametrize("dataset, remove", [
    ("cub", "train_test_split.txt"),
    ("cub", "images.txt"),
    ("pets", "annotations/test.txt"),
    ("dtd", "labels/test1.txt"),
    ("food101", "meta/classes.txt"),
    ("places365", "places365_val.txt"),
])
def test_missing_annotation_file_is_named_with_the_layout(dataset, remove, shared, tmp_path):
    folder = _built(dataset, tmp_path, shared)
    (folder / remove).unlink()
    with pytest.raises(LayoutError) as err:
        read_benchmark(dataset, folder)
    assert remove.split("/")[-1] in str(err.value) and "expects" in str(err.value)


def test_malformed_lines_are_reported_with_file_and_line(shared, tmp_path):
    folder = _built("pets", tmp_path, shared)
    (folder / "annotations" / "test.txt").write_text("Abyssinian_1 one 1 1\n")
    with pytest.raises(LayoutError, match=r"test.txt:1: 'one' is not an integer"):
        read_benchmark("pets", folder)
    (folder / "annotations" / "test.txt").write_text("Abyssinian_1 38 1 1\n")
    with pytest.raises(LayoutError, match=r"label 37 outside 0..36"):
        read_benchmark("pets", folder)
    folder = _built("imagenet_r", tmp_path, shared)
    (folder / "n01440764").mkdir()  # tench: an ImageNet class that ImageNet-R does not have
    with pytest.raises(LayoutError, match="not among the 200 classes"):
        read_benchmark("imagenet_r", folder)
    folder = _built("imagenet_sketch", tmp_path, shared)
    (folder / "misc").mkdir()
    with pytest.raises(LayoutError, match="not ImageNet wnids"):
        read_benchmark("imagenet_sketch", folder)


def test_missing_folder_and_unknown_layout(tmp_path):
    with pytest.raises(LayoutError, match="cub folder not found; expected CUB_200_2011/"):
        read_benchmark("cub", tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown dataset layout 'mnist'"):
        read_benchmark("mnist", tmp_path)


def test_ingest_layout_keeps_subset_and_records_missing_images(shared, tmp_path):
    from storage import Catalog
    from tasks.ingest import ingest_folder

    folder = _built("imagenet_a", tmp_path, shared)
    next(folder.rglob("*.jpg")).write_bytes(b"not a jpeg")
    db = str(tmp_path / "glocal.duckdb")
    report = ingest_folder(db, "imagenet_a", str(folder), shard_size=4, layout="imagenet_a")
    assert report["images"] == 5 and len(report["bad"]) == 1
    info = Catalog(db).dataset("imagenet_a")
    assert info["class_subset"] == json.loads((shared / "classnames" / "imagenet_subsets.json").read_text())["imagenet_a"]
    assert len(info["classnames"]) == 1000

    cub = _built("cub", tmp_path, shared)
    (cub / "images" / "200.Bird_200").rename(cub / "images" / "gone")
    report = ingest_folder(db, "cub", str(cub), layout="cub")
    assert report["images"] == 2 and [r for _, r in report["bad"]][0].startswith("FileNotFoundError")


def test_even_sample_spans_the_list():
    from tasks.ingest import even_sample

    assert even_sample(list(range(10)), 3) == [0, 3, 6]
    assert even_sample(list(range(4)), 10) == [0, 1, 2, 3]
    assert even_sample(list(range(4)), None) == [0, 1, 2, 3]


def test_restricted_scores_rank_only_the_subset():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.7], [0.2, 0.8, 0.3, 0.1]])
    restricted = restrict_classes(scores, [1, 2])
    assert restricted.argmax(1).tolist() == [2, 1]  # row 0: class 0 (0.9) and 3 (0.7) are outside
    assert restricted[0, 0] == float("-inf") and restricted[0, 2] == 0.5
    assert restrict_classes(scores, None) is scores
